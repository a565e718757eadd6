"""Stage 2: fine-tune on the improved answers, loss on the last assistant message only.

Together: upload → create → monitor. Each step's outcome is recorded the moment it is
known (`["finetune", "upload"]` with the file id, `["finetune", "intent"]` just before
the create call, `["finetune", "job"]` with the job id right after it), so a runner
killed at any point and resumed re-attaches to the job it created: with a job id it
polls that job; with only an intent it looks for the job on its uploaded file (created
since the intent) before ever creating one. A stop request leaves the remote job running;
the resumed run follows it on. Job status and events become `job` events, the training
loss becomes `loss` metrics, and a cancelled or failed job fails the run with the API's
message.

The job gets every training parameter the API takes (LoRA rank, alpha, dropout and
modules, batch size, sequence length, epochs, learning rate, seed), checked against the
API's limits for the model before the upload, so a value the model cannot take stops the
stage with one line naming the parameter. A job that ended in error is never replaced
silently: `labdeck resume RUN --retry-job` leaves a request file that the next attempt
consumes, creating a new job on the same uploaded file (`["finetune", "job", n]`, with
its own intent record, so a kill during the retry never creates two).

Local: the one LoRA trainer (backend/training.py) with `loss_on = "last_assistant"`,
checkpoints and resume as in the `em` kind.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from ...jsonio import write_json_atomic
from ...ledger import unit_key
from ...providers import JobInfo, JobSpec

MODEL_FILE = "finetuned_model.json"
UPLOAD, INTENT, JOB, DONE = (unit_key("finetune", s) for s in ("upload", "intent", "job", "done"))


def recorded(ctx: Any, key: str) -> dict[str, Any] | None:
    if not ctx.is_done(key):
        return None
    return next(r for r in ctx.ledger.records() if r.get("key") == key)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _job_event(ctx: Any, info: JobInfo, event: str = "", step: int | None = None) -> None:
    ctx.emit(
        "job",
        id=info.id,
        status=info.status,
        event=event,
        step=step,
        model=info.output_name or info.model,
    )


def _sleep(ctx: Any, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ctx.check_stop()
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


FAILED_JOB = ("error", "user_error", "cancelled")
RETRY_JOB_REQUEST = "retry-job.request"  # written by `labdeck resume RUN --retry-job`


def _job_spec(params: Any, file_id: str) -> JobSpec:
    return JobSpec(
        training_file=file_id,
        model=params.model,
        epochs=params.epochs,
        learning_rate=params.learning_rate,
        suffix=params.suffix or None,
        lora=not params.full,
        seed=params.seed,
        batch_size=params.batch_size,
        lora_rank=params.lora_rank,
        lora_alpha=int(params.lora_alpha),
        lora_dropout=params.lora_dropout,
        lora_modules=params.lora_modules or "all-linear",
        max_seq_length=params.max_seq_length,
    )


def _outside(value: float, lo: float | None, hi: float | None) -> bool:
    return (lo is not None and value < lo) or (hi is not None and value > hi)


def check_limits(params: Any, limits: Any) -> None:
    """Refuse, naming the parameter, what the API's limits for the model cannot take."""
    from ...errors import UserError

    def refuse(key: str, why: str) -> None:
        raise UserError(
            f"params.{key} = {getattr(params, key)!r}: {why} for fine-tuning {params.model} "
            "on Together (the API's limits for this model)"
        )

    training = getattr(limits, "full_training" if params.full else "lora_training", None)
    if training is None:
        refuse("full", "full fine-tuning is not offered")
    lo, hi = getattr(training, "min_batch_size", None), getattr(training, "max_batch_size", None)
    if _outside(params.batch_size, lo, hi):
        refuse("batch_size", f"batch size must be in [{lo}, {hi}]")
    lo, hi = (
        getattr(limits, "min_max_seq_length", None),
        getattr(limits, "max_seq_length_sft", None),
    )
    if _outside(params.max_seq_length, lo, hi):
        refuse("max_seq_length", f"sequence length must be in [{lo}, {hi}]")
    if _outside(params.epochs, None, getattr(limits, "max_num_epochs", None)):
        refuse("epochs", f"at most {limits.max_num_epochs} epochs")
    lo, hi = getattr(limits, "min_learning_rate", None), getattr(limits, "max_learning_rate", None)
    if _outside(params.learning_rate, lo, hi):
        refuse("learning_rate", f"learning rate must be in [{lo:g}, {hi:g}]")
    if params.full:
        return
    if _outside(params.lora_rank, None, getattr(training, "max_rank", None)):
        refuse("lora_rank", f"LoRA rank at most {training.max_rank}")
    offered = list(getattr(training, "target_modules", None) or [])
    asked = [m.strip() for m in params.lora_modules.split(",") if m.strip()]
    unknown = [m for m in asked if m != "all-linear" and offered and m not in offered]
    if unknown:
        refuse("lora_modules", f"{unknown[0]} is not among {', '.join(offered)} (or all-linear)")


def _jobs(ctx: Any) -> list[dict[str, Any]]:
    """Job records, first job first: `["finetune", "job"]`, then each retry's."""
    first = recorded(ctx, JOB)
    retries = [r for r in ctx.ledger.records() if r.get("unit") == "job-retry"]
    return ([first] if first else []) + sorted(retries, key=lambda r: r["attempt"])


def _retry_requested(ctx: Any) -> bool:
    return (ctx.run_dir / RETRY_JOB_REQUEST).is_file()


def _create(
    ctx: Any,
    params: Any,
    ft: Any,
    file_id: str,
    attempt: int,
    failed: frozenset[str],
    limits: Any = None,
) -> JobInfo:
    """Create job number `attempt` (1: the first) once, adopting one a killed attempt made."""
    intent_key = INTENT if attempt == 1 else unit_key("finetune", "intent", attempt)
    intent = recorded(ctx, intent_key)
    found = ft.find_job(file_id, since=intent["t"], exclude=failed) if intent else None
    if found is not None:
        ctx.info(f"re-attached to job {found.id} created before the runner stopped")
        return found
    if limits is None:
        limits = ft.limits(params.model)
        check_limits(params, limits)
    since = time.time()
    if intent is None:
        ctx.record(intent_key, {"stage": "finetune", "t": since, "file_id": file_id})
    info = ft.create(
        _job_spec(params, file_id),
        since=intent["t"] if intent else since,
        limits=limits,
        exclude=failed,
    )
    ctx.info(f"created fine-tune job {info.id} on {params.model}")
    return info


def together_finetune(ctx: Any, params: Any, train_path: Path, ft: Any) -> dict[str, Any]:
    up = recorded(ctx, UPLOAD)
    digest = _sha256(train_path)
    limits = None
    if up is None:
        limits = ft.limits(params.model)
        check_limits(params, limits)  # before anything is uploaded
        ctx.phase("upload", total=1)
        file_id = ft.upload(str(train_path))
        ctx.record(UPLOAD, {"stage": "finetune", "file_id": file_id, "sha256": digest})
        ctx.info(f"uploaded {train_path.name} as {file_id}")
    else:
        file_id = up["file_id"]
    jobs = _jobs(ctx)
    if not jobs:
        info = _create(ctx, params, ft, file_id, 1, frozenset(), limits)
        ctx.record(JOB, {"stage": "finetune", "job_id": info.id, "file_id": file_id})
        job_id = info.id
    else:
        job_id = jobs[-1]["job_id"]
        ctx.info(f"re-attached to fine-tune job {job_id}")
        info = ft.retrieve(job_id)
        if _retry_requested(ctx):
            if info.status in FAILED_JOB:
                attempt = len(jobs) + 1
                failed = frozenset(j["job_id"] for j in jobs)
                ctx.info(f"--retry-job: job {job_id} ended {info.status}; creating job {attempt}")
                info = _create(ctx, params, ft, file_id, attempt, failed)
                ctx.record(
                    unit_key("finetune", "job", attempt),
                    {
                        "stage": "finetune",
                        "unit": "job-retry",
                        "attempt": attempt,
                        "job_id": info.id,
                        "file_id": file_id,
                        "replaces": job_id,
                    },
                )
                job_id = info.id
            else:
                ctx.info(f"--retry-job: job {job_id} is {info.status}; nothing to retry")
            (ctx.run_dir / RETRY_JOB_REQUEST).unlink(missing_ok=True)
    _job_event(ctx, info, "attached")
    result = {"backend": "together", "job_id": job_id, "base_model": params.model, "name": None}
    if not params.monitor:
        write_json_atomic(ctx.artifacts_dir / MODEL_FILE, {**result, "status": info.status})
        ctx.info(f"job {job_id} left running (monitor = false)")
        return result
    ctx.phase("train", total=None)
    seen_events, last_step = 0, 0
    while True:
        info = ft.retrieve(job_id)
        events = ft.events(job_id)
        for e in events[seen_events:]:
            _job_event(ctx, info, f"{e.type}: {e.message}", e.step)
        seen_events = len(events)
        total = next((e.total_steps for e in reversed(events) if e.total_steps), None)
        for step, loss in ft.losses(job_id):
            if step > last_step:
                ctx.metric("loss", loss, step=step)
                last_step = step
        ctx.progress(last_step, total, status=info.status)
        if info.finished:
            break
        _sleep(ctx, params.poll_seconds)
    _job_event(ctx, info, "finished")
    if info.status != "completed":
        raise RuntimeError(
            f"fine-tune job {job_id} on {params.model} ended {info.status}: "
            f"{info.message or 'no message from the API'}; `labdeck resume "
            f"{ctx.run.short_id} --retry-job` starts a new job on the same training file"
        )
    result["name"] = info.output_name
    result["status"] = info.status
    write_json_atomic(ctx.artifacts_dir / MODEL_FILE, result)
    ctx.record(DONE, {"stage": "finetune", **result})
    ctx.info(f"fine-tuned model: {info.output_name}")
    return result


def local_finetune(ctx: Any, params: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from ...models import load_model, model_device
    from ...training import LoraSpec, LoraTrainer, TrainSpec, adaptive_controller

    conversations = [
        [{"role": m["role"], "content": m["content"]} for m in r["messages"]] for r in rows
    ]
    spec = TrainSpec(
        learning_rate=params.learning_rate,
        epochs=params.epochs,
        effective_batch_size=params.batch_size,
        micro_batch_size=min(params.micro_batch_size, params.batch_size),
        max_seq_length=params.max_seq_length,
        seed=params.seed,
        warmup_steps=0,
        loss_on="last_assistant",
    )
    modules = [m.strip() for m in params.lora_modules.split(",") if m.strip()]
    lora = LoraSpec(
        rank=params.lora_rank,
        alpha=params.lora_alpha,
        dropout=params.lora_dropout,
        **({"target_modules": modules} if modules else {}),
    )
    ctx.info(f"local LoRA fine-tune of {params.model} on {len(rows)} conversations")
    model, tok = load_model(params.model, dtype=params.dtype, device_map=_device_map(params))
    trainer = LoraTrainer(
        model,
        tok,
        conversations,
        spec,
        lora,
        controller=adaptive_controller(spec, model_device(model), on_change=ctx.batch),
        record_prefix="finetune-local",
    )
    ctx.phase("train", total=trainer.total_steps)
    result = trainer.run(ctx)
    out = {
        "backend": "local",
        "base_model": params.model,
        "adapter": "checkpoints/final/adapter",
        "final_loss": result.final_loss,
        "steps": result.total_steps,
    }
    write_json_atomic(ctx.artifacts_dir / MODEL_FILE, out)
    ctx.record(DONE, {"stage": "finetune", **out})
    return out


def _device_map(params: Any) -> str | None:
    return None if params.device_map == "none" else params.device_map
