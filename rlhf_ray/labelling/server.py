"""``rlhf-ray label serve``: everything the labelling app needs, checked and built before it listens, then
served by uvicorn until Ctrl-C or SIGTERM."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhf_ray.config import Config
from rlhf_ray.config.device import resolve_device
from rlhf_ray.labelling.app import create_app
from rlhf_ray.labelling.assignment import Assigner
from rlhf_ray.labelling.items import ItemMaker, load_label_prompts
from rlhf_ray.labelling.prefetch import Prefetcher
from rlhf_ray.labelling.session import LabellingSession
from rlhf_ray.labelling.store import JudgementStore
from rlhf_ray.models.checks import ModelFolder, check_model_folders
from rlhf_ray.trainers.sampling import Sampler


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False

    def url(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}/"


def model_folder(cfg: Config) -> ModelFolder:
    """The folder whose responses are ranked: ``feedback.model_path``, else the SFT export."""
    if cfg.feedback.model_path is not None:
        return ModelFolder("labelled", "feedback.model_path", cfg.feedback.model_path)
    return ModelFolder("labelled", "sft.checkpoint.export_dir", cfg.sft.checkpoint.export_dir)


def build_session(cfg: Config) -> LabellingSession:
    """The session of ``cfg.feedback``: its model folder checked and loaded, its prompts read, the judgements
    file opened (and continued); raises ``ModelFolderError``, ``DataError`` or ``StoreError`` first."""
    feedback = cfg.feedback
    folder = model_folder(cfg)
    check_model_folders([folder], tokenizer=folder)
    rollout = cfg.rollout.model_copy(update={"samples_per_prompt": feedback.responses_per_prompt})
    cfg = cfg.model_copy(update={"rollout": rollout})
    store = JudgementStore(feedback.output_path)
    try:
        device = resolve_device(cfg.resources.device, torch.cuda.device_count())
        sampler = Sampler(cfg, folder.path, device)
        prompts = load_label_prompts(cfg, sampler.tokenizer)
        maker = ItemMaker(sampler, prompts, cfg.seed)
        assigner = Assigner(feedback.target, feedback.overlap, feedback.lease_s)
        return LabellingSession(
            store, assigner, Prefetcher(maker.make, feedback.prefetch), folder.path, feedback.prefetch
        )
    except BaseException:
        store.close()
        raise


def serve(cfg: Config, address: Address, say: Callable[[str], None]) -> None:
    """Serve the app at ``address`` until stopped; ``say`` is told where (and the token, once)."""
    session = build_session(cfg)
    token = None if address.loopback else secrets.token_urlsafe(24)
    try:
        listener = socket.create_server(
            (address.host, address.port), family=socket.AF_INET6 if ":" in address.host else socket.AF_INET
        )
        import uvicorn

        app = create_app(session, token, address.loopback)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        port = listener.getsockname()[1]
        say(f"labelling {model_folder(cfg).path} into {cfg.feedback.output_path}")
        if token is None:
            say(f"open {address.url(port)} (stats: {address.url(port)}stats); Ctrl-C stops")
        else:
            say(f"open {address.url(port)}#token={token} (stats: {address.url(port)}stats#token={token})")
            say("the token is shown only now; every request without it is refused. Ctrl-C stops")
        server.run(sockets=[listener])
    finally:
        session.close()
