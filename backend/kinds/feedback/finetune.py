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


def together_finetune(ctx: Any, params: Any, train_path: Path, ft: Any) -> dict[str, Any]:
    up = recorded(ctx, UPLOAD)
    digest = _sha256(train_path)
    if up is None:
        ctx.phase("upload", total=1)
        file_id = ft.upload(str(train_path))
        ctx.record(UPLOAD, {"stage": "finetune", "file_id": file_id, "sha256": digest})
        ctx.info(f"uploaded {train_path.name} as {file_id}")
    else:
        file_id = up["file_id"]
    job_rec = recorded(ctx, JOB)
    if job_rec is None:
        intent = recorded(ctx, INTENT)
        found = ft.find_job(file_id, since=intent["t"]) if intent else None
        if found is not None:
            ctx.info(f"re-attached to job {found.id} created before the runner stopped")
            info = found
        else:
            since = time.time()
            if intent is None:
                ctx.record(INTENT, {"stage": "finetune", "t": since, "file_id": file_id})
            spec = JobSpec(
                training_file=file_id,
                model=params.model,
                epochs=params.epochs,
                learning_rate=params.learning_rate,
                suffix=params.suffix or None,
                lora=not params.full,
                seed=params.seed,
            )
            info = ft.create(spec, since=intent["t"] if intent else since)
            ctx.info(f"created fine-tune job {info.id} on {params.model}")
        ctx.record(JOB, {"stage": "finetune", "job_id": info.id, "file_id": file_id})
        job_id = info.id
    else:
        job_id = job_rec["job_id"]
        ctx.info(f"re-attached to fine-tune job {job_id}")
        info = ft.retrieve(job_id)
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
            f"{info.message or 'no message from the API'}"
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
    lora = LoraSpec(rank=params.lora_rank, alpha=params.lora_alpha)
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
