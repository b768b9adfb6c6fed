"""The command line's commands: one function each, errors printed as one red line."""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import InputError, PerspectivesError

app = typer.Typer(
    help="Track the perspectives of interacting language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No emoji codes: ":a:" in a class's note must print as typed.
console = Console(stderr=True, emoji=False)
out_console = Console(emoji=False)


def _e(value: object) -> str:
    """``value`` as text that rich prints as it is (paths and names may hold [brackets])."""
    return escape(str(value))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one yellow line each, without the source line Python would print."""
    console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


DeviceOption = Annotated[
    str,
    typer.Option(
        envvar="PERSPECTIVES_DEVICE",
        help="Where the models compute: auto (a CUDA GPU if torch sees one, else the CPU), "
        "cpu, cuda, cuda:N or mps.",
    ),
]


# Escaped: the help is rich markup, which would read [ray] as a tag and drop it.
RAY_PANEL = escape("Many processes or machines (Ray: pip install 'perspectives[ray]')")


def _on_ray(help: str, **kw):
    """An option of the "Many machines" panel of ``run --help``."""
    return typer.Option(help=help, rich_help_panel=RAY_PANEL, **kw)


DtypeOption = Annotated[
    str,
    typer.Option(
        "--dtype",
        envvar="PERSPECTIVES_DTYPE",
        help="How the models compute: auto (bfloat16 where the CPU or GPU runs it natively, "
        "else float32), float32 (on every machine: greedy answers then repeat exactly across "
        "machines; a bfloat16 run repeats exactly only on bfloat16 machines) or bfloat16.",
    ),
]


def _use_device(device: str, dtype: str = "auto") -> None:
    import os

    from ..models.device import DEVICE_ENV, PRECISION_ENV, set_device, set_precision

    set_precision(dtype)
    set_device(device)
    # A sweep's system processes and a placement's hosts inherit them.
    os.environ[PRECISION_ENV] = dtype
    if device != "auto":
        os.environ[DEVICE_ENV] = device


def _friendly_errors(fn):
    """Turn the package's input errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import warnings

        shown, warnings.showwarning = warnings.showwarning, _show_warning
        stop = _sigterm_as_interrupt()
        try:
            return fn(*args, **kwargs)
        except PerspectivesError as exc:
            # Messages carry user text (file names, prompts): never read as markup.
            console.print(
                f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; files written so far are complete[/]")
            raise typer.Exit(code=130) from None
        finally:
            warnings.showwarning = shown
            stop()

    return wrapper


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Treat SIGTERM (a scheduler's stop, ``kill``) like Ctrl-C, so every command ends its
    writes as on Ctrl-C; returns what restores the previous handler. Only the main thread
    may set handlers (not so under some test runners): then nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


@app.command()
@_friendly_errors
def compare(
    source: Annotated[
        Path,
        typer.Argument(
            help="A responses file (.csv, .jsonl or .parquet with columns model, prompt_id, "
            "response; optional replicate, time and label columns), or a .yaml listing models."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")] = Path(
        "compare-run"
    ),
    prompts: Annotated[
        str | None,
        typer.Option(
            help="Prompt file (or bundled set name) for a .yaml; overrides its 'prompts'."
        ),
    ] = None,
    color_by: Annotated[
        str | None,
        typer.Option(help="Label column that colours the scatter (default: the first label)."),
    ] = None,
    n_components: Annotated[
        int | None, typer.Option(help="Dimension of the space (default: Zhu–Ghodsi elbow).")
    ] = None,
    drop_incomplete: Annotated[
        bool,
        typer.Option(
            "--drop-incomplete", help="Drop points that lack some prompts instead of failing."
        ),
    ] = False,
    embedder: Annotated[
        str,
        typer.Option(
            help="'bundled' (all-MiniLM-L6-v2), a sentence-transformers name or path, or the model "
            "name at --embedding-url."
        ),
    ] = "bundled",
    embedding_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of an OpenAI-compatible embeddings API, e.g. http://localhost:8000/v1."
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Embed every response again (default: cached).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
) -> None:
    """Place a collection of models in a perspective space.

    Writes OUT/perspectives.parquet|csv, distances.npy|csv, space.png, space.html (interactive,
    opens offline), summary.json, and responses.parquet when answers were generated.
    """
    _use_device(device, dtype)
    from ..data.prompts import load_prompts
    from ..models.generate import generate_responses
    from ..models.spec import load_compare_config
    from ..space.compare import (
        OUTPUT_FILES,
        check_output_dir,
        compare_responses,
        write_comparison,
    )
    from ..space.embed import get_embedder
    from ..space.responses import read_table

    generated = None
    if source.suffix.lower() in (".yaml", ".yml"):
        cfg = load_compare_config(source)
        prompt_table = load_prompts(prompts if prompts is not None else cfg.prompts)
        check_output_dir(out, [source, prompt_table.attrs.get("source")])
        columns = {"model"} | {k for m in cfg.models for k in m.labels}
        _check_color_by(color_by, columns, str(source))
        generated = generate_responses(
            cfg.models, prompt_table, cfg.generation, show_progress=not quiet
        )
        table, label, allow_empty = generated, f"{source} (generated responses)", True
    else:
        table, label, allow_empty = read_table(source), str(source), False
        check_output_dir(out, [source], files=OUTPUT_FILES[1:])
        not_labels = {"prompt_id", "prompt", "response", "replicate"}
        _check_color_by(color_by, set(table.columns) - not_labels, label)
    emb = get_embedder(embedder, url=embedding_url, cache=not no_cache)
    comp = compare_responses(
        table,
        embedder=emb,
        n_components=n_components,
        source=label,
        drop_incomplete=drop_incomplete,
        allow_empty=allow_empty,
        show_progress=not quiet,
        warn=lambda msg: console.print(f"[yellow]warning:[/] {_e(msg)}"),
    )
    write_comparison(comp, out, color_by=color_by, responses=generated)
    out_console.print(
        f"{comp.info['n_points']} points, {comp.info['n_prompts']} prompts, "
        f"d = {comp.space.n_components_} -> {_e(out)}/"
    )


def _check_color_by(color_by: str | None, columns: set[str], source: str) -> None:
    if color_by is not None and color_by not in columns:
        raise InputError(
            f"no such label column; available: {sorted(columns)}",
            source=source,
            field="--color-by",
            value=color_by,
        )


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"one of {', '.join(choices)}", field=option, value=value)


def _check_positive(option: str, value: float) -> None:
    if not 0 < value < math.inf:  # NaN too; configs refuse infinities the same way
        raise InputError("must be a finite number above 0", field=option, value=value)


def _check_name(option: str, value: str) -> None:
    """A plain name that becomes part of a file name: no folders, no leading dot."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value):
        raise InputError(
            "letters, digits, '_', '.' and '-' only, not starting with '.' or '-'",
            field=option,
            value=value,
        )


def _check_output_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder", source=str(out), field="--out")


def _check_run_folder(path: Path, option: str) -> None:
    """A folder to read a run or sweep from: it must exist and be a folder."""
    if not path.exists():
        raise InputError("no such folder", source=str(path), field=option)
    if not path.is_dir():
        raise InputError("is a file, not a run folder", source=str(path), field=option)


@app.command()
@_friendly_errors
def figure2(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")] = Path(
        "figure2"
    ),
    max_prompts: Annotated[
        int | None,
        typer.Option(min=1, help="Use only the first N prompts of each set (faster, weaker)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
) -> None:
    """The paper's Figure 2 on the embedded defaults.

    15 models in 3 classes (optimist, pessimist, scientist system prompts; one sampling seed per
    model) answer a prompt set relevant to the class differences and one orthogonal to them.
    Writes both perspective spaces side by side (OUT/figure2.png, figure2.html) and prints how
    well the classes separate in each (leave-one-out 1-NN accuracy, silhouette).
    """
    _check_output_folder(out)
    _use_device(device, dtype)
    from ..experiments.figure2 import run_figure2, separation_table

    result = run_figure2(out, max_prompts=max_prompts, show_progress=not quiet)
    frame = separation_table(result)
    table = Table(
        title="Class separation (1-NN: leave-one-out accuracy, chance 0.33; silh.: "
        "silhouette; 2d: the plotted space; elbow: d chosen by Zhu–Ghodsi)"
    )
    for col in frame.columns:
        table.add_column(col, justify="right" if col != "prompts" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    out_console.print(table)
    out_console.print(f"figures: {_e(out)}/figure2.png, {_e(out)}/figure2.html")


@app.command()
@_friendly_errors
def init(
    bank: Annotated[
        str,
        typer.Option(
            help="Question bank: bundled society_culture, science_mathematics or neutral, or a "
            "CSV/JSONL/Parquet file with columns question, answer."
        ),
    ] = "society_culture",
    n_models: Annotated[int, typer.Option(min=1, help="How many initial models.")] = 5,
    sample_size: Annotated[
        int, typer.Option(min=1, help="Pairs each model is fine-tuned on (at most the bank's).")
    ] = 100,
    base: Annotated[str, typer.Option(help="Base model: 'bundled', a folder or a hub id.")] = (
        "bundled"
    ),
    method: Annotated[str, typer.Option(help="full or lora.")] = "full",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (paper: 3).")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate (paper: 5e-5).")] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size.")] = 8,
    prompt_format: Annotated[
        str, typer.Option(help="chat, appendix-a (the paper's format for base models) or plain.")
    ] = "chat",
    prefix: Annotated[str, typer.Option(help="Model names are PREFIX-1..N.")] = "model",
    seed: Annotated[int, typer.Option(min=0, help="Seeds the samples and the fine-tuning.")] = 0,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
) -> None:
    """Fine-tune initial models, each on its own sample of a bank.

    Results are cached by a hash of (base model, data, hyper-parameters), so a second run with
    the same settings is instant; an interrupted run keeps every model it finished.
    """
    _check_choice("--method", method, ("full", "lora"))
    _check_choice("--prompt-format", prompt_format, ("chat", "appendix-a", "plain"))
    _check_positive("--lr", lr)
    _check_name("--prefix", prefix)
    _use_device(device, dtype)
    from ..data.banks import load_bank
    from ..models.initial import init_population, initial_cache_dir, population_specs
    from ..reporting.progress import progress_bar

    table_in = load_bank(bank)
    if sample_size > len(table_in):
        raise InputError(
            f"larger than the bank {bank!r} ({len(table_in)} pairs)",
            field="--sample-size",
            value=sample_size,
        )
    specs = population_specs(
        table_in,
        n_models,
        sample_size,
        seed=seed,
        prefix=prefix,
        model=base,
        update={"method": method, "epochs": epochs, "lr": lr, "batch_size": batch_size},
        prompt_format=prompt_format,
    )
    table = Table(title=f"Initial models (cache: {_e(initial_cache_dir())})")
    for col in ("model", "pairs", "from cache"):
        table.add_column(col)
    with progress_bar("fine-tuning initial models", len(specs)) as advance:

        def done(name: str, cached: bool) -> None:
            table.add_row(name, str(sample_size), "yes" if cached else "no")
            advance(1)

        init_population(specs, on_model=done)
    out_console.print(table)


@app.command("instruct-tune")
@_friendly_errors
def instruct_tune(
    base: Annotated[str, typer.Option(help="Base model: a folder or a hub id.")],
    data: Annotated[
        Path,
        typer.Option(
            help="Dolly 15k as a local .jsonl/.csv/.parquet (columns instruction, context, "
            "response, category), or a hub id."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the tuned model.")],
    epochs: Annotated[int, typer.Option(min=1, help="Epochs (paper: 10).")] = 10,
    lr: Annotated[float, typer.Option(help="Learning rate (paper: 5e-5).")] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1, help="Batch size (paper: 8).")] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N pairs.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the data order.")] = 0,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
) -> None:
    """Instruction-tune a base model as in the paper's Appendix A.

    Keeps Dolly's open_qa, brainstorming, general_qa and creative_writing pairs with responses
    under 100 characters, formats them as '### Instruction: / ### Response: / ### End' (added
    as special tokens) and fine-tunes every weight. Writes a transformers model folder; use it
    with prompt_format 'appendix-a'.
    """
    _check_positive("--lr", lr)
    from ..models.sources import is_model_folder
    from ..store import replaceable_dir

    # Checked before the hours of training: the model folder replaces --out whole.
    target = replaceable_dir(out, is_kind=is_model_folder, what="a model folder")
    if Path(base).exists() and Path(base).resolve() == target.resolve():
        raise InputError("the tuned model would replace its base model", source=str(out))
    _use_device(device, dtype)
    from ..data.datasets import load_dolly
    from ..models.hf_agent import HFAgent

    dolly = load_dolly(str(data))
    if dolly.empty:
        from ..data.datasets import DOLLY_CATEGORIES, DOLLY_MAX_RESPONSE_CHARS

        raise InputError(
            "no pair passes the paper's filter (Appendix A: category one of "
            f"{', '.join(DOLLY_CATEGORIES)}, and a response of 1 to "
            f"{DOLLY_MAX_RESPONSE_CHARS - 1} characters)",
            source=str(data),
        )
    if limit is not None:
        dolly = dolly.head(limit)
    pairs = list(zip(dolly["instruction"], dolly["response"], strict=True))
    agent = HFAgent(
        "instruct",
        base,
        prompt_format="appendix-a",
        update={"epochs": epochs, "lr": lr, "batch_size": batch_size},
    )
    stats = agent.learn(pairs, seed=seed)
    agent.export(out)
    losses = ", ".join(f"{x:.3f}" for x in stats.epoch_losses)
    out_console.print(
        f"{len(pairs)} pairs, {epochs} epochs; loss per epoch: {losses} -> {_e(out)}/"
    )


@app.command()
@_friendly_errors
def run(
    config: Annotated[
        str | None, typer.Argument(help="A preset name (see `perspectives presets`) or a run YAML.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder, or sweep folder (default: runs/<name>)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the run in this folder from its last complete step (with the "
            "config and a larger --set steps=N: to N steps)."
        ),
    ] = None,
    scale: Annotated[
        str | None,
        typer.Option(
            help="A scale of the preset: `cpu` (reduced to run here; the default of the case "
            "studies) or `paper` (the paper's counts and Yahoo! Answers data; on a 2-core CPU "
            "a case-study step then takes tens of minutes)."
        ),
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep",
            help="Run the preset's whole grid (every condition x seed), one run folder each; "
            "finished systems are skipped, so re-running continues it.",
        ),
    ] = False,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds of the sweep, e.g. `0,1,2` (default: the preset's).")
    ] = None,
    conditions: Annotated[
        str | None,
        typer.Option(
            help="Conditions of the sweep to run, e.g. `targets-0,targets-2-every-2` "
            "(default: all; `perspectives presets` lists them)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Base model of every group: a local folder or hub id (default: bundled); "
            "with --api-url, the server's name for its model."
        ),
    ] = None,
    update: Annotated[
        str | None,
        typer.Option(
            help="How every model learns: `full` or `lora` (fine-tuning) or `memory` (keeps "
            "what it hears in a retrieval database and answers with the most similar items "
            "in its prompt; nothing is fine-tuned, so it is fast on a CPU). Default: the "
            "preset's. Runs go to runs/<name>-<update>."
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            help="Every model behind this OpenAI-compatible server, e.g. "
            "http://127.0.0.1:8080/v1 (vLLM, Ollama, llama.cpp's server); implies "
            "--update memory."
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="With --api-url: the environment variable that holds the API key (its name; "
            "the key is never written anywhere)."
        ),
    ] = None,
    keep_weights: Annotated[
        bool,
        typer.Option(
            "--keep-weights",
            help="With --sweep: keep each finished system's model weights (by default they are "
            "removed; the analyses need only the tables and embeddings, but a sweep continued "
            "later to more steps with --set steps=N needs them).",
        ),
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config key, e.g. `--set steps=10 --set groups.0.count=4` "
            "(values are YAML).",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --sweep: systems run at once, each in its own process with an equal "
            "share of the CPU cores (output in each system's run.log).",
        ),
    ] = 1,
    no_share_steps: Annotated[
        bool,
        typer.Option(
            "--no-share-steps",
            help="With --sweep: run every system from t = 0. By default, conditions of a "
            "seed that are the same system up to a step (before a disruption, between "
            "attacks) run those steps once, and the others start from a copy of that step.",
        ),
    ] = False,
    keep_checkpoint: Annotated[
        list[int] | None,
        typer.Option(
            "--keep-checkpoint",
            help="Keep the models' checkpoint of this step after the next (a sweep starts "
            "other systems from it); repeatable.",
            hidden=True,
        ),
    ] = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    executor: Annotated[
        str,
        _on_ray(
            "With --sweep: `local` (this machine: --jobs processes) or `ray` (each system a Ray "
            "task on a cluster; run folders on a filesystem every node sees)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        _on_ray(
            "The Ray cluster: `auto` (the one `ray start` began here), `ray://HOST:10001`, or "
            "none for a new one on this machine."
        ),
    ] = None,
    cpus_per_system: Annotated[
        float, _on_ray("With --executor ray: CPUs each system takes (its torch threads).", min=0)
    ] = 1.0,
    gpus_per_system: Annotated[
        float, _on_ray("With --executor ray: GPUs each system takes.", min=0)
    ] = 0.0,
    max_retries: Annotated[
        int,
        _on_ray(
            "With --executor ray: times a system whose worker or node died is started again "
            "(it resumes from its last complete step).",
            min=0,
        ),
    ] = 2,
    placement: Annotated[
        str,
        typer.Option(
            help="Where one system's models live: `auto` (processes when that pays and "
            "changes no number: a CPU with 2+ cores, no OMP_NUM_THREADS, fine-tuned "
            "transformers models of 50M+ parameters, no databases; else local), `local` "
            "(this process), `processes` (--actors processes of this machine, each a share "
            "of the models with the cores shared among them: on a CPU, where one small model "
            "rarely keeps two cores busy, usually faster; the same tables) or `ray` "
            "(--actors Ray actors). A sweep's systems are always local.",
            rich_help_panel=RAY_PANEL,
        ),
    ] = "auto",
    actors: Annotated[
        int, _on_ray("With --placement processes or ray: how many hosts.", min=1)
    ] = 2,
    cpus_per_actor: Annotated[
        float, _on_ray("With --placement ray: CPUs each actor takes (its torch threads).", min=0)
    ] = 1.0,
    gpus_per_actor: Annotated[
        float, _on_ray("With --placement ray: GPUs each actor takes.", min=0)
    ] = 0.0,
) -> None:
    """Simulate a system of interacting models into a run folder.

    Threads: torch uses one per core. On a machine busy with other work, OMP_NUM_THREADS=1
    (e.g. `OMP_NUM_THREADS=1 perspectives run ...`) avoids fighting for the cores; OpenMP's
    wait policy is PASSIVE unless you set OMP_WAIT_POLICY. A sweep's --jobs shares the cores
    among its systems itself.

    Each step: draw the communication graph, let every learning model interview one
    in-neighbour and learn from the answers, then evaluate every model. A run interrupted by
    Ctrl-C or a crash loses at most the step in progress: continue it with --resume DIR (or run
    the same command again). With --sweep, every condition x seed of the preset runs in
    OUT/<condition>/seed-<s>/ and a system that fails is reported while the others go on.
    """
    _use_device(device, dtype)
    _stop_with_parent_sweep()
    from ..experiments.presets import load_preset
    from ..simulation.engine import Simulation

    keep = {"keep_checkpoints": frozenset(keep_checkpoint or ())}
    api = {"update": update, "api_url": api_url, "api_key_env": api_key_env}
    _check_cluster_options(executor, placement, sweep, jobs)
    actor = {"actors": actors, "cpus_per_actor": cpus_per_actor, "gpus_per_actor": gpus_per_actor}
    on_ray = {"placement": placement, "address": address, **actor}
    _check_ignored_options(
        resume=resume,
        config=config,
        out=out,
        sweep=sweep,
        seeds=seeds,
        changes={"--scale": scale, "--model": model, "--set": set_, **_api_flags(api)},
    )
    if resume is not None:
        _check_run_folder(resume, "--resume")
        cfg = _run_config(config, scale, model, set_, **api) if config else None
        _run_one(_placed(Simulation.resume(resume, cfg, **keep), **on_ray))
        return
    if config is None:
        raise typer.BadParameter("give a preset or config, or --resume DIR")
    if jobs > 1 and not sweep:
        raise typer.BadParameter("--jobs runs a sweep's systems side by side: add --sweep")
    if conditions and not sweep:
        raise typer.BadParameter("--conditions chooses among a sweep's conditions: add --sweep")
    if sweep:
        cluster = None
        if executor == "ray":
            cluster = {
                "address": address,
                "cpus_per_system": cpus_per_system,
                "gpus_per_system": gpus_per_system,
                "max_retries": max_retries,
                "dtype": dtype,
            }
        _run_sweep(
            load_preset(config),
            config,
            out,
            scale,
            seeds,
            model,
            set_,
            keep_weights,
            jobs,
            device,
            not no_share_steps,
            conditions,
            api,
            cluster,
        )
        return
    if out is not None:
        _check_output_folder(out)
    cfg = _run_config(config, scale, model, set_, **api)
    sim = Simulation.create(cfg, out or Path(cfg.output or Path("runs") / cfg.name), **keep)
    _run_one(_placed(sim, **on_ray))


def _api_flags(api: dict) -> dict:
    return {f"--{k.replace('_', '-')}": v for k, v in api.items()}


def _check_ignored_options(
    *, resume: str | None, config: str | None, out, sweep: bool, seeds, changes: dict
) -> None:
    """Refuse options this command would otherwise run without a word about."""
    if seeds is not None and not sweep:
        raise typer.BadParameter(
            "--seeds chooses a sweep's seeds: add --sweep (one run's seed: --set seed=N)"
        )
    if resume is None:
        return
    if out is not None or sweep:
        raise typer.BadParameter(
            "--resume continues the run in its own folder: leave out --out and --sweep (a "
            "sweep resumes when its command is run again)"
        )
    given = [flag for flag, value in changes.items() if value]
    if given and config is None:
        raise typer.BadParameter(
            f"{', '.join(given)} change a config, and a resumed run keeps its own: leave them "
            "out, or give the config too (the run is checked against it)"
        )


def _check_cluster_options(executor: str, placement: str, sweep: bool, jobs: int) -> None:
    if executor not in ("local", "ray"):
        raise typer.BadParameter(f"--executor is `local` or `ray`, not {executor!r}")
    if placement not in ("auto", "local", "processes", "ray"):
        raise typer.BadParameter(
            f"--placement is `auto`, `local`, `processes` or `ray`, not {placement!r}"
        )
    if executor == "ray" and not sweep:
        raise typer.BadParameter(
            "--executor ray runs a sweep's systems on a cluster: add --sweep (one system's "
            "models go to a cluster with --placement ray)"
        )
    if executor == "ray" and jobs > 1:
        raise typer.BadParameter("--jobs is for --executor local; Ray runs what its nodes fit")
    if placement not in ("auto", "local") and sweep:
        raise typer.BadParameter(
            f"--placement {placement} places one system's models; a sweep shares the cores "
            "among its systems with --jobs (or a cluster's with --executor ray)"
        )


def _placed(sim, placement: str, address: str | None, **actor):
    """The simulation with its models in processes of this machine (``processes``, or
    ``auto`` where ``auto_placement`` says so) or in Ray actors (``ray``)."""
    if placement == "auto":
        from ..simulation.placement import auto_placement

        placement, why = auto_placement(sim.cfg)
        if placement == "processes":
            console.print(
                f"models in {actor['actors']} processes ({why}; --placement local keeps them "
                "in this one)"
            )
    if placement == "processes":
        from ..simulation.placement import ProcessPlacement

        sim.placement = ProcessPlacement(sim.cfg, sim.out, hosts=actor["actors"])
    if placement == "ray":
        from ..cluster import RayPlacement, require_ray

        require_ray()
        sim.placement = RayPlacement(sim.cfg, sim.out, address=address, **actor)
    return sim


def _most_at_once(systems, jobs: int, needed) -> int:
    """The most ``needed(system)`` that ``jobs`` unfinished systems may add up to at once."""
    from ..experiments.sweep import system_done

    sizes = sorted((needed(s) for s in systems if not system_done(s)), reverse=True)
    return sum(sizes[:jobs])


def _warn_disk(systems, out: Path, jobs: int) -> None:
    """Warn before a sweep that may fill the disk (a full error comes only hours later)."""
    import shutil

    from ..experiments.sweep import disk_needed

    need = _most_at_once(systems, jobs, disk_needed)
    folder = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    free = shutil.disk_usage(folder).free
    if need > free:
        console.print(
            f"[yellow]warning:[/] {free / 1e9:.1f} GB free where the sweep writes; "
            f"{jobs} system(s) at a time may need up to {need / 1e9:.1f} GB (two float32 "
            "copies of every model's weights while a step runs). Fewer --jobs, LoRA "
            "updates or another --out need less.",
            highlight=False,
            soft_wrap=True,
        )


def _available_memory() -> int | None:
    """Bytes of memory this machine can give without swapping (Linux's MemAvailable), or
    None where it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _warn_memory(systems, jobs: int) -> None:
    """Warn before a sweep whose systems side by side may not fit in memory (the system
    the kernel kills for it fails hours later)."""
    from ..experiments.sweep import memory_needed

    need, free = _most_at_once(systems, jobs, memory_needed), _available_memory()
    if free is not None and need > free:
        console.print(
            f"[yellow]warning:[/] {free / 1e9:.1f} GB of memory available; {jobs} system(s) "
            f"at a time may need up to {need / 1e9:.1f} GB while they fine-tune, and a "
            "system killed for memory fails (the same command continues it). Fewer --jobs "
            "or LoRA updates need less.",
            highlight=False,
            soft_wrap=True,
        )


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _stop_with_parent_sweep() -> None:
    """Stop with the parent sweep's process, if any, as on its SIGTERM (which every command
    treats like Ctrl-C, so the statuses are written); only in the main thread, as there."""
    import threading

    if threading.current_thread() is threading.main_thread():
        from ..experiments.executors import stop_with_parent

        stop_with_parent()


def _overrides(
    model: str | None,
    sets: list[str] | None,
    preset,
    update: str | None = None,
    api_url: str | None = None,
    api_key_env: str | None = None,
) -> dict:
    """The config overrides of ``--set``, ``--model``, ``--update`` and ``--api-url``."""
    from ..config import parse_yaml
    from ..errors import ConfigError

    out: dict = {}
    for item in sets or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InputError("expected KEY=VALUE", field="--set", value=item)
        try:
            parsed = parse_yaml(value, "--set")
        except ConfigError as exc:
            raise InputError(exc.message, field="--set", value=item) from None
        # Applied in order: a key given again goes where it was given last.
        out.pop(key.strip(), None)
        out[key.strip()] = parsed
    # --model and --api-url apply to every group, the ones a --set groups=[...] gives too.
    groups = out["groups"] if isinstance(out.get("groups"), list) else preset.raw.get("groups")
    n_groups = len(groups or [])
    if api_url is not None:
        if model is None:
            raise InputError("name the server's model with --model", field="--api-url")
        # A model behind an API cannot be fine-tuned: it learns by remembering.
        update = update or "memory"
        api = {"url": api_url, **({"api_key_env": api_key_env} if api_key_env else {})}
        for i in range(n_groups):
            out.update({f"groups.{i}.backend": "openai", f"groups.{i}.api": api})
    elif api_key_env is not None:
        raise InputError("--api-key-env goes with --api-url", field="--api-key-env")
    if model is not None:
        out.update({f"groups.{i}.model": model for i in range(n_groups)})
    if update is not None:
        out["update.method"] = update
        if update != (preset.raw.get("update") or {}).get("method", "full"):
            # Its own run folder: runs/<name>-memory beside the fine-tuned runs/<name>.
            out.setdefault("name", f"{preset.raw.get('name', 'run')}-{update}")
    return out


def _run_config(config: str, scale: str | None, model: str | None, sets: list[str] | None, **kw):
    from ..experiments.presets import load_preset

    preset = load_preset(config)
    return preset.config(scale, _overrides(model, sets, preset, **kw))


def _run_one(sim, label: str = "") -> None:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = sim.cfg.steps + 1
    done = sim.last_complete_step() + 1
    if sim.extended_from is not None:
        out_console.print(
            f"{_e(label)}continuing the run from {sim.extended_from} to {sim.cfg.steps} steps "
            f"(its steps so far stay): {_e(sim.out)}/",
            highlight=False,
        )
    if done == total:
        sim.run()  # checks the folder; runs nothing
        out_console.print(
            f"the run is already complete (t = 0..{sim.cfg.steps}): {_e(sim.out)}/  (see it with: "
            f"perspectives report {_e(sim.out)})"
        )
        return
    columns = (
        # The label (a condition's name) is text: neither markup nor a format field.
        TextColumn(
            _e(label).replace("{", "{{").replace("}", "}}") + "[bold]step "
            "{task.fields[step]}/{task.fields[T]}"
        ),
        TextColumn("{task.fields[phase]:<22}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(
            "run",
            total=total,
            completed=done,
            step=min(max(done, 0), sim.cfg.steps),
            T=sim.cfg.steps,
            phase="starting",
        )

        def on_phase(t: int, phase: str) -> None:
            bar.update(task, completed=t, step=t, phase=phase)

        sim.on_phase = on_phase
        sim.run()
        bar.update(task, completed=total, phase="done")
    out_console.print(
        f"run complete: {_e(sim.out)}/  (see it with: perspectives report {_e(sim.out)})"
    )


def _run_sweep(
    preset,
    config,
    out,
    scale,
    seeds,
    model,
    sets,
    keep_weights,
    jobs=1,
    device="auto",
    share_steps=True,
    conditions=None,
    api=None,
    cluster=None,
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..experiments.executors import InProcess, LocalProcesses
    from ..experiments.sweep import prepare_sweep, run_sweep, steps_done

    overrides = _overrides(model, sets, preset, **(api or {}))
    plan = prepare_sweep(
        preset,
        out=out,
        scale=scale,
        seeds=seeds,
        sets=overrides,
        share_steps=share_steps,
        conditions=conditions,
    )
    systems, out = plan.systems, plan.out
    console.print(
        f"sweep {_e(plan.name)} ({plan.scale or 'as written'}): {len(systems)} systems "
        f"-> {_e(out)}/",
        highlight=False,
    )
    if plan.shared:
        once, total = plan.steps_saved()
        console.print(
            f"{len(plan.shared)} systems start from a step they share with another: "
            f"{once} of {total} steps are not run twice (--no-share-steps runs them all)",
            highlight=False,
        )

    def on_status(system, status: str, error: str | None) -> None:
        msg = f"  {_e(system.condition)} seed {system.seed}: {_e(status)}"
        console.print(msg + (f" - {_e(error)}" if error else ""), highlight=False, soft_wrap=True)

    if cluster is not None:
        from ..cluster import RayExecutor

        executor = RayExecutor(device=device, **cluster)
        jobs = executor.jobs
        console.print(
            f"on Ray: each system a task of {executor.cpus_per_system:g} CPU(s), "
            f"{executor.gpus_per_system:g} GPU(s)",
            highlight=False,
        )
    elif jobs > 1:
        executor = LocalProcesses(jobs, device)
        console.print(
            f"{jobs} systems at a time, {executor.threads} thread(s) each", highlight=False
        )
    else:
        executor = InProcess(
            lambda sim, system: _run_one(sim, label=f"{system.condition} seed {system.seed}  ")
        )
    _warn_disk(systems, out, jobs)
    if cluster is None:  # on Ray the systems use the nodes' memory, not this machine's
        _warn_memory(systems, jobs)
    bar = Progress(
        TextColumn("[bold]sweep steps"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        disable=jobs == 1,  # one system at a time shows its own step bar instead
    )
    task = bar.add_task("sweep", total=sum(s.cfg.steps + 1 for s in systems))
    with bar:
        record = run_sweep(
            systems,
            out,
            preset=config,
            scale=plan.scale,
            executor=executor,
            on_status=on_status,
            keep_weights=keep_weights,
            on_wait=lambda: bar.update(task, completed=sum(steps_done(s) for s in systems)),
        )
        bar.update(task, completed=sum(steps_done(s) for s in systems))
    # This invocation's systems only: the record keeps those of earlier ones (other seeds).
    mine = {(s.condition, s.seed) for s in systems}
    entries = [s for s in record["systems"] if (s["condition"], s["seed"]) in mine]
    failed = [s for s in entries if s["status"] == "failed"]
    done = sum(s["status"] == "done" for s in entries)
    out_console.print(f"sweep: {done} of {len(systems)} systems done -> {_e(out)}/sweep.json")
    if failed:
        for s in failed:
            console.print(f"[red]failed[/] {_e(s['condition'])} seed {s['seed']}: {_e(s['error'])}")
        raise typer.Exit(code=1)


@app.command()
def presets() -> None:
    """List the bundled presets."""
    import yaml
    from rich.padding import Padding

    from ..experiments.presets import preset_names, preset_text

    def say(text: str, indent: int = 0) -> None:
        # Wrapped lines keep their item's indent, so the nesting reads on a narrow terminal.
        out_console.print(Padding(text, (0, 0, 0, indent), expand=False))

    for name in preset_names():
        cfg = yaml.safe_load(preset_text(name))
        note = " ".join(str(cfg.get("notes", "")).split())
        say(f"[bold]{name}[/]: {note}")
        for scale, spec in (cfg.get("scales") or {}).items():
            default = " (default)" if scale == cfg.get("default_scale") else ""
            text = " ".join(str(spec.get("notes", "")).split())
            say(f"--scale {scale}{default}: {text}", 2)
            for line in spec.get("reductions") or []:
                say(f"- {' '.join(str(line).split())}", 4)
        if cfg.get("sweep"):
            conds = [c["name"] for c in cfg["sweep"]["conditions"]]
            say(
                f"--sweep: {len(conds)} conditions ({', '.join(conds)}) x seeds "
                f"{cfg['sweep'].get('seeds', [0])}",
                2,
            )


@app.command()
@_friendly_errors
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, or a sweep folder.")],
    n_components: Annotated[
        int | None, typer.Option(min=1, help="Dimension of the joint space (default: elbow).")
    ] = None,
) -> None:
    """Analyse a run or sweep: its space over time, every analysis.

    The joint perspective space of the whole history, iso-mirror, clusters and their
    stability, polarization, dispersion, class trajectories, and the diversity of the answers
    (it warns when most answers are one text).

    Writes RUN/analysis/: perspectives.parquet and .csv (t, model, class, z1..zd), one Parquet
    table per analysis, summary.json and the figures (trajectories, isomirror, clusters,
    polarization .png). On a sweep folder, analyses every run and writes SWEEP/analysis/ with
    the conditions compared. An interrupted run is analysed on its complete steps.
    """
    from ..experiments.sweep import SWEEP_FILE
    from ..reporting.run_analysis import analyze_run, analyze_sweep, write_run_analysis

    _check_run_folder(run_dir, "RUN_DIR")
    if (run_dir / SWEEP_FILE).exists():
        _analyze_sweep(analyze_sweep(run_dir, n_components=n_components))
        return
    result = analyze_run(run_dir, n_components=n_components)
    out = write_run_analysis(result)
    _say_warnings(result)
    s = result.summary
    out_console.print(
        f"{s['models']} models x {len(result.steps)} snapshots (t = {result.steps[0]}.."
        f"{result.steps[-1]}), d = {s['dimension']}; clusters at the end: {s['clusters_last']}"
        + (
            f"; {s['polarization_kind']} polarization at the end: {s['polarization_last']:.2f}"
            if s["polarization_kind"]
            else ""
        )
        + f" -> {_e(out)}/"
    )
    moved = _movement_line(s.get("class_movement") or {})
    if moved:
        out_console.print(moved)
    for name, d in (s.get("databases") or {}).items():
        out_console.print(
            escape(
                f"database {name} at t = {d['t']}: z1 {d['z1']:.2f}, "
                f"{d['distance_to_mean']:.2f} from the models' mean, "
                f"{d['distance_to_nearest']:.2f} from the nearest model ({d['nearest']})"
            )
        )


@app.command()
@_friendly_errors
def monitor(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (running or finished).")],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Follow the run as its steps land, until its last step (Ctrl-C stops).",
        ),
    ] = False,
    chart: Annotated[
        str | None,
        typer.Option(help="Control chart: adaptive, fixed, ewma or cusum (default: adaptive)."),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(min=2, help="Adaptive chart: trailing window, in snapshots."),
    ] = None,
    burn_in: Annotated[
        int | None,
        typer.Option(min=2, help="Adaptive chart: snapshots before it watches."),
    ] = None,
    reference: Annotated[
        int | None,
        typer.Option(min=2, help="Fixed, EWMA, CUSUM charts: snapshots of the reference period."),
    ] = None,
    k: Annotated[
        float | None,
        typer.Option(help="Fixed, adaptive, EWMA charts: band half-width, in sigma (default: 3)."),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, metavar="LEVEL", help="Level at which change points are reported."
        ),
    ] = 0.05,
    interval: Annotated[
        float | None,
        typer.Option(
            min=0.1, metavar="SECONDS", help="With --follow: seconds between looks (default: 5)."
        ),
    ] = None,
    control: Annotated[
        Path | None,
        typer.Option(
            help="A control run folder (the same system and seed without the intervention, e.g. "
            "a sweep's no-target condition): test, step by step, when the run departed from it. "
            "On a sweep folder: the control's condition name, every other run compared with it "
            "seed by seed.",
        ),
    ] = None,
) -> None:
    """Watch a run: control-chart alarms and change points.

    Charts every 1-d series of the run (the iso-mirror, the polarization, the data-kernel
    spread, each class's mean z1) and finds change points (PELT, each with a permutation
    p-value) in the iso-mirror and in the whole trajectory. Window, burn-in and reference
    default to a third of the run's snapshots. With --follow, each new step is analysed as it
    lands and its alarms printed. Writes RUN/analysis/alarms.parquet (one row per alarm or
    change point); `perspectives report` shows the charts.

    One run's charts cannot tell an attack from the drift every population shows. With
    --control, every step is also compared with the control run: the learners' distance to
    their namesakes there, how much closer they came to each model that does not learn (an
    adversary), and an energy test of run against control; the run departed at the first step
    of the final stretch of rejections (a level-alpha decision). Writes
    RUN/analysis/control.parquet and a "departure" row in alarms.parquet.

    A run of two classes (4 models or more each) also has its classes tested against each
    other at every step (energy test on their data kernels) into
    RUN/analysis/class_tests.parquet.

    On a sweep folder, --control names a condition (e.g. targets-0): every other condition's
    run is compared with the control's run of the same seed, and the departures are tabled
    in SWEEP/analysis/control.parquet.
    """
    from ..experiments.sweep import SWEEP_FILE
    from ..reporting.monitor import MonitorSettings, event_line, monitor_run, write_alarms
    from ..reporting.run_analysis import analyze_run
    from ..simulation.rundir import RunFolder

    _check_run_folder(run_dir, "RUN_DIR")
    if (run_dir / SWEEP_FILE).exists():
        run_only = (follow, interval, chart, window, burn_in, reference, k)
        _refuse_on_a_sweep(dict(zip(_RUN_ONLY, run_only, strict=True)))
        _sweep_against_control(run_dir, control, alpha)
        return
    if interval is not None and not follow:
        raise typer.BadParameter("--interval is the pause between looks of --follow: add it")
    chart = chart or "adaptive"
    if control is not None:
        from ..reporting.control import check_control

        _check_run_folder(control, "--control")
        check_control(run_dir, control)  # before the analysis, not after it
    settings = MonitorSettings(chart, window, burn_in, reference, k, alpha)
    folder = RunFolder(run_dir)
    total = folder.read_config(validate=False).steps
    seen: set[tuple] = set()

    def look(upto: int | None) -> tuple:
        result = analyze_run(run_dir, upto=upto)
        mon = monitor_run(result, settings)
        for _, e in mon.events.iterrows():
            key = (e["kind"], e["series"], int(e["t"]))
            if key not in seen:
                seen.add(key)
                out_console.print(escape(event_line(e)))
        return result, mon

    if follow:
        _follow(folder, total, 5.0 if interval is None else interval, look)
    result, mon = look(None)
    for note in mon.notes:
        out_console.print(f"[dim]{escape(note)}[/]")
    _class_tests(result)
    if control is not None:
        mon.events = _against_control(run_dir, control, alpha, mon.events)
    path = write_alarms(result, mon)
    n_alarms = int((mon.events["kind"] == "alarm").sum())
    n_changes = int((mon.events["kind"] == "change point").sum())
    band = "" if chart == "cusum" else f", k = {settings.width:g}"
    out_console.print(
        f"{n_alarms} alarm(s) ({chart} chart{band}), {n_changes} change point(s) "
        f"at p <= {alpha:g} -> {_e(path)}"
    )


_RUN_ONLY = ("--follow", "--interval", "--chart", "--window", "--burn-in", "--reference", "--k")


def _refuse_on_a_sweep(given: dict[str, object]) -> None:
    """A sweep is only compared with its control condition: no chart, nothing to follow.
    ``given``: each run-only option and its value (None or False when not given)."""
    named = [option for option, value in given.items() if value not in (None, False)]
    if named:
        raise typer.BadParameter(
            f"{', '.join(named)}: for a run folder; a sweep folder is compared with its "
            "--control condition (monitor a run inside it for its charts)"
        )


def _follow(folder, total: int, interval: float, look) -> None:
    """Call ``look(t)`` at each newly complete step t of a run until its last (or Ctrl-C)."""
    import time

    if folder.last_complete_step() < total and not folder.is_running():
        out_console.print(
            "[dim]no process is running this run now: waiting for its steps all the same "
            "(Ctrl-C stops; continue the run with `perspectives run --resume`)[/]"
        )
    last = -1
    try:
        while True:
            now = folder.last_complete_step()
            if now != last and now >= 1:
                out_console.print(f"[dim]step {now} of {total} complete[/]")
                look(now)
                last = now
            if now >= total:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        out_console.print("stopped following")


def _sweep_against_control(sweep_dir: Path, control: Path | None, alpha: float) -> None:
    """``monitor SWEEP --control CONDITION``: every run against its seed's control run."""
    from ..reporting.control import compare_sweep_to_control, write_sweep_control

    if control is None:
        raise InputError(
            "a sweep folder is monitored against one of its conditions: give --control "
            "CONDITION (e.g. the no-target one), or monitor a run folder inside it",
            source=str(sweep_dir),
        )
    table, notes = compare_sweep_to_control(sweep_dir, str(control), alpha=alpha)
    closer = [c for c in table.columns if c.startswith("closer_at_T:")]
    shown = Table(title=f"against {_e(control)}, seed by seed (energy test, alpha {alpha:g})")
    for col in ("condition", "seed", "departed", "distance at T", "p at T"):
        shown.add_column(col)
    for col in closer:
        shown.add_column(f"closer to {col.split(':', 1)[1]}")
    for _, r in table.iterrows():
        shown.add_row(
            escape(str(r["condition"])),
            str(r["seed"]),
            _departed(r),
            f"{r['distance_rel_at_T']:.2f}x",
            f"{r['p_at_T']:.3g}",
            *(f"{r[c]:+.1%}" for c in closer),
        )
    out_console.print(shown)
    for note in notes:
        out_console.print(f"[dim]{escape(note)}[/]")
    path = write_sweep_control(sweep_dir, table, str(control))
    out_console.print(f"{len(table)} run(s) against {escape(str(control))} -> {escape(str(path))}")


def _departed(row) -> str:
    """'t=11 (10 after t=1)', 't=3', or 'no' for a row of the sweep's control table."""
    import pandas as pd

    if pd.isna(row["departure"]):
        return "no"
    if pd.isna(row["onset"]):
        return f"t={row['departure']}"
    return f"t={row['departure']} ({row['delay']} after t={row['onset']})"


def _class_tests(result) -> None:
    """Print the test of a two-class run's classes, first and last step, and write it."""
    from ..reporting.monitor import run_class_tests, write_class_tests

    tests, line = run_class_tests(result)
    if line:
        out_console.print(escape(line))
    if tests is not None:
        out_console.print(f"class test per step -> {escape(str(write_class_tests(result, tests)))}")


def _against_control(run_dir: Path, control: Path, alpha: float, events):
    """Print the run's step-by-step comparison with ``control``, write it, and return
    ``events`` with the departure added."""
    from ..reporting.control import (
        compare_to_control,
        departure_event,
        step_line,
        summary_line,
        write_control,
    )

    out_console.print(f"against the control {escape(str(control))}:")
    against = compare_to_control(run_dir, control, alpha=alpha)
    for _, row in against.steps.iterrows():
        out_console.print(escape(step_line(row, against.fixed)))
    for note in against.notes:
        out_console.print(f"[dim]{escape(note)}[/]")
    out_console.print(escape(summary_line(against)))
    out_console.print(f"per-step comparison -> {escape(str(write_control(against)))}")
    return departure_event(events, against)


def _movement_line(movement: dict) -> str:
    """'class means moved a 1.8x, b 0.4x their within-class spread' (classes with a spread)."""
    parts = [
        f"{_e(c)} {m['ratio']:.1f}x" for c, m in movement.items() if m.get("ratio") is not None
    ]
    return f"class means moved {', '.join(parts)} their within-class spread" if parts else ""


def _say_warnings(result) -> None:
    """Warn about what an analysis of a run should not be read without: missing steps, and a
    population that repeats one answer."""
    from rich.markup import escape

    from ..analysis import collapse_note
    from ..reporting.run_analysis import compute_where, steps_text

    # Model answers and paths may hold brackets that rich would read as markup.
    where = escape(str(result.run_dir))
    note = collapse_note(result.diversity) if result.diversity is not None else None
    paths = result.summary.get("compute") or []
    if len(paths) > 1:
        shown = "; ".join(
            f"{compute_where(p)}: answering "
            f"{p['answer_dtype']}, training {p['train_dtype']} "
            f"(t = {steps_text(sorted(p['steps']), shown=12)})"
            for p in paths
        )
        console.print(
            f"[yellow]{where}: steps computed in more than one way ({escape(shown)}); greedy "
            "answers repeat exactly only on one (use --dtype float32 for portable runs, and "
            "the same OMP_NUM_THREADS or --jobs to resume)[/]",
            highlight=False,
        )
    if note:
        console.print(f"[yellow]{where}: {escape(note)}[/]", highlight=False)
    if result.missing_steps:
        miss = result.missing_steps
        span = f"{miss[0]}..{miss[-1]}" if len(miss) > 1 else str(miss[0])
        console.print(
            f"[yellow]{where}: incomplete run; analysed steps {result.steps[0]}.."
            f"{result.steps[-1]}, missing {len(miss)} snapshot(s): t = {span}[/]",
            highlight=False,
        )


def _analyze_sweep(result) -> None:
    from ..reporting.run_analysis import write_sweep_analysis

    for runs in result.runs.values():
        for run in runs:
            _say_warnings(run)
    for entry in result.failed:
        console.print(
            f"[red]failed system[/] {_e(entry['condition'])} seed {entry['seed']}: "
            f"{_e(entry['error'])}",
            highlight=False,
        )
    for entry in result.missing:
        console.print(
            f"[yellow]missing system[/] {_e(entry['condition'])} seed {entry['seed']}: done, but "
            f"its folder {_e(entry['folder'])} is gone or empty; left out of the comparison",
            highlight=False,
        )
    out = write_sweep_analysis(result)
    n = sum(len(r) for r in result.runs.values())
    out_console.print(
        f"{n} runs over {sum(bool(r) for r in result.runs.values())} conditions analysed "
        f"({len(result.pending)} unfinished, {len(result.failed)} failed, "
        f"{len(result.missing)} missing) -> {_e(out)}/"
    )


@app.command()
@_friendly_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, or a sweep folder.")],
) -> None:
    """Write a self-contained HTML report of a run or a sweep.

    The report is RUN/report.html. It runs the analyses first (as `perspectives analyze`,
    writing RUN/analysis/ with the PNGs the page links to). The page embeds plotly, so it opens
    offline in any browser.
    """
    from ..experiments.sweep import SWEEP_FILE
    from ..reporting.report import run_report, sweep_report
    from ..reporting.run_analysis import analyze_run, analyze_sweep, write_run_analysis

    _check_run_folder(run_dir, "RUN_DIR")
    if (run_dir / SWEEP_FILE).exists():
        result = analyze_sweep(run_dir)
        _analyze_sweep(result)
        path = sweep_report(result)
    else:
        result = analyze_run(run_dir)
        write_run_analysis(result)
        _say_warnings(result)
        path = run_report(result)
    out_console.print(f"report: {_e(path)}")


@app.command()
@_friendly_errors
def results(
    runs_dir: Annotated[
        Path, typer.Argument(help="Folder holding the sweeps, e.g. runs/ (cs1-disruption-cpu ...).")
    ] = Path("runs"),
    doc: Annotated[Path, typer.Option(help="The results page to update.")] = Path(
        "docs/results.md"
    ),
    scale: Annotated[str, typer.Option(help="Which scale's sweeps to read.")] = "cpu",
) -> None:
    """Regenerate the reproduction page's tables and figures.

    Each block <!-- BEGIN name --> ... <!-- END name --> of DOC is rewritten from the sweep
    folder RUNS/name (an ablation, say) or RUNS/name-<scale> (a case study's sweep); the
    sweep's figures are copied to DOC's figures/ folder. Blocks without a sweep, or whose
    sweep has no complete step yet, are kept.
    Then the block <!-- BEGIN verdicts --> is judged anew: each of the paper's claims, by a
    stated rule, on every table of the page (so it runs without any sweep too).
    """
    from ..experiments.presets import load_preset
    from ..experiments.reproduction import regenerate
    from ..experiments.verdicts import CASE_STUDIES

    scales = sorted({s for name in CASE_STUDIES for s in load_preset(name).scale_names()})
    _check_choice("--scale", scale, tuple(scales))
    found = regenerate(runs_dir, doc, scale)
    out_console.print(f"updated {_e(doc)} from {_e(', '.join(found))}")


def _reflow_help(typer_app: typer.Typer) -> None:
    """Join the single line breaks inside each command's docstring paragraphs. Typer keeps
    them, so on a terminal narrower than the source's lines every line wrapped in two."""
    for info in typer_app.registered_commands:
        doc = info.help or inspect.getdoc(info.callback) or ""
        info.help = "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n"))


_reflow_help(app)


def main() -> None:  # pragma: no cover - console entry
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
