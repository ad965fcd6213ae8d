"""Rule-based reward functions, named in a config as ``reward.function: module:function`` (or several,
with weights, under ``reward.functions``).

A reward function is called by keyword, each argument a list with one entry per sample: ``prompts``,
``responses`` (also as ``completions``), ``labels`` (``None`` where a prompt has no label), and every
other column of the prompt rows by its name. It is passed the names it has parameters for (all of them
when it takes ``**kwargs``) and returns one float per response.
"""
