"""What every section of the schema shares: strict, documented blocks and the value types they use."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
"""``auto``: bfloat16 where the device computes it fast (GPUs, CPUs with avx512_bf16 or AMX), else float32."""
Precision = Literal["auto", "fp32", "bf16"]
"""``auto``: bf16 where the device computes it fast, else fp32."""
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Probability = Annotated[float, Field(gt=0.0, le=1.0)]


class Section(BaseModel):
    """A block of the configuration: strict about unknown keys, documented by field docstrings."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)
