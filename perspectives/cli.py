"""Command line: ``perspectives compare | figure2``."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import PerspectivesError

app = typer.Typer(
    help="Track the perspectives of interacting language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out_console = Console()


def _friendly_errors(fn):
    """Turn the package's input errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PerspectivesError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; files written so far are complete[/]")
            raise typer.Exit(code=130) from None

    return wrapper


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
        bool, typer.Option(help="Drop points that lack some prompts instead of failing.")
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
    cache: Annotated[bool, typer.Option(help="Cache embeddings on disk.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Place a collection of models in a perspective space.

    Writes OUT/perspectives.parquet|csv, distances.npy|csv, space.png, space.html (interactive,
    opens offline), summary.json, and responses.parquet when answers were generated.
    """
    from .compare import compare_responses, write_comparison
    from .config import load_compare_config
    from .embed import get_embedder
    from .generate import generate_responses
    from .prompts import load_prompts
    from .responses import read_table

    generated = None
    if source.suffix.lower() in (".yaml", ".yml"):
        cfg = load_compare_config(source)
        prompt_table = load_prompts(prompts if prompts is not None else cfg.prompts)
        columns = {"model"} | {k for m in cfg.models for k in m.labels}
        _check_color_by(color_by, columns, str(source))
        generated = generate_responses(
            cfg.models, prompt_table, cfg.generation, show_progress=not quiet
        )
        table, label, allow_empty = generated, f"{source} (generated responses)", True
    else:
        table, label, allow_empty = read_table(source), str(source), False
        _check_color_by(color_by, set(table.columns) - {"prompt_id", "response"}, label)
    emb = get_embedder(embedder, url=embedding_url, cache=cache)
    comp = compare_responses(
        table,
        embedder=emb,
        n_components=n_components,
        source=label,
        drop_incomplete=drop_incomplete,
        allow_empty=allow_empty,
        show_progress=not quiet,
        warn=lambda msg: console.print(f"[yellow]warning:[/] {msg}"),
    )
    write_comparison(comp, out, color_by=color_by, responses=generated)
    out_console.print(
        f"{comp.info['n_points']} points, {comp.info['n_prompts']} prompts, "
        f"d = {comp.space.n_components_} -> {out}/"
    )


def _check_color_by(color_by: str | None, columns: set[str], source: str) -> None:
    if color_by is not None and color_by not in columns:
        from .errors import InputError

        raise InputError(
            f"no such label column; available: {sorted(columns)}",
            source=source,
            field="--color-by",
            value=color_by,
        )


@app.command()
@_friendly_errors
def figure2(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")] = Path(
        "figure2"
    ),
    max_prompts: Annotated[
        int | None, typer.Option(help="Use only the first N prompts of each set (faster, weaker).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """The paper's Figure 2 on the embedded defaults.

    15 models in 3 classes (optimist, pessimist, scientist system prompts; one sampling seed per
    model) answer a prompt set relevant to the class differences and one orthogonal to them.
    Writes both perspective spaces side by side (OUT/figure2.png, figure2.html) and prints how
    well the classes separate in each (leave-one-out 1-NN accuracy, silhouette).
    """
    from .figure2 import run_figure2, separation_table

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
    out_console.print(f"figures: {out}/figure2.png, {out}/figure2.html")


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
    n_models: Annotated[int, typer.Option(help="How many initial models.")] = 5,
    sample_size: Annotated[int, typer.Option(help="Pairs each model is fine-tuned on.")] = 100,
    base: Annotated[str, typer.Option(help="Base model: 'bundled', a folder or a hub id.")] = (
        "bundled"
    ),
    method: Annotated[str, typer.Option(help="full or lora.")] = "full",
    epochs: Annotated[int, typer.Option(help="Epochs (paper: 3).")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate (paper: 5e-5).")] = 5e-5,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 8,
    prompt_format: Annotated[
        str, typer.Option(help="chat, appendix-a (the paper's format for base models) or plain.")
    ] = "chat",
    prefix: Annotated[str, typer.Option(help="Model names are PREFIX-1..N.")] = "model",
    seed: Annotated[int, typer.Option(help="Seeds the samples and the fine-tuning.")] = 0,
) -> None:
    """Fine-tune initial models, each on its own random sample of a question bank.

    Results are cached by a hash of (base model, data, hyper-parameters), so a second run with
    the same settings is instant; an interrupted run keeps every model it finished.
    """
    from .banks import load_bank
    from .initial import init_population, initial_cache_dir, population_specs
    from .progress import progress_bar

    table_in = load_bank(bank)
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
    table = Table(title=f"Initial models (cache: {initial_cache_dir()})")
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
    epochs: Annotated[int, typer.Option(help="Epochs (paper: 10).")] = 10,
    lr: Annotated[float, typer.Option(help="Learning rate (paper: 5e-5).")] = 5e-5,
    batch_size: Annotated[int, typer.Option(help="Batch size (paper: 8).")] = 8,
    limit: Annotated[int | None, typer.Option(help="Use only the first N pairs.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the data order.")] = 0,
) -> None:
    """Instruction-tune a base model as in the paper's Appendix A.

    Keeps Dolly's open_qa, brainstorming, general_qa and creative_writing pairs with responses
    under 100 characters, formats them as '### Instruction: / ### Response: / ### End' (added
    as special tokens) and fine-tunes every weight. Writes a transformers model folder; use it
    with prompt_format 'appendix-a'.
    """
    from .agents.agent import Agent
    from .datasets import load_dolly

    dolly = load_dolly(str(data))
    if limit is not None:
        dolly = dolly.head(limit)
    pairs = list(zip(dolly["instruction"], dolly["response"], strict=True))
    agent = Agent(
        "instruct",
        base,
        prompt_format="appendix-a",
        update={"epochs": epochs, "lr": lr, "batch_size": batch_size},
    )
    stats = agent.learn(pairs, seed=seed)
    agent.export(out)
    losses = ", ".join(f"{x:.3f}" for x in stats.epoch_losses)
    out_console.print(f"{len(pairs)} pairs, {epochs} epochs; loss per epoch: {losses} -> {out}/")


@app.command()
@_friendly_errors
def run(
    config: Annotated[
        str | None, typer.Argument(help="A preset name (see `perspectives presets`) or a run YAML.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/<name>).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this folder from its last complete step."),
    ] = None,
) -> None:
    """Simulate a system of interacting models and record every step in a run folder.

    Each step: draw the communication graph, let every learning model interview one
    in-neighbour and learn from the answers, then evaluate every model. A run interrupted by
    Ctrl-C or a crash loses at most the step in progress: continue it with --resume DIR.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .engine import Simulation
    from .presets import resolve_config

    if resume is not None:
        cfg = resolve_config(config) if config else None
        sim = Simulation.resume(resume, cfg)
    else:
        if config is None:
            raise typer.BadParameter("give a preset or config, or --resume DIR")
        cfg = resolve_config(config)
        sim = Simulation.create(cfg, out or Path(cfg.output or Path("runs") / cfg.name))
    total = sim.cfg.steps + 1
    done = sim.last_complete_step() + 1
    columns = (
        TextColumn("[bold]step {task.fields[step]}/{task.fields[T]}"),
        TextColumn("{task.fields[phase]:<22}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(
            "run", total=total, completed=done, step=max(done, 0), T=sim.cfg.steps, phase="starting"
        )

        def on_phase(t: int, phase: str) -> None:
            bar.update(task, completed=t, step=t, phase=phase)

        sim.on_phase = on_phase
        sim.run()
        bar.update(task, completed=total, phase="done")
    out_console.print(f"run complete: {sim.out}/  (analyse with: perspectives analyze {sim.out})")


@app.command()
def presets() -> None:
    """List the bundled presets."""
    import yaml

    from .presets import preset_names, preset_text

    for name in preset_names():
        cfg = yaml.safe_load(preset_text(name))
        note = " ".join(str(cfg.get("notes", "")).split())
        out_console.print(f"[bold]{name}[/]: {note}")


@app.command()
@_friendly_errors
def analyze(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    n_components: Annotated[
        int | None, typer.Option(help="Dimension of the joint space (default: elbow).")
    ] = None,
) -> None:
    """Fit the joint perspective space over the whole history of a run.

    Writes RUN/perspectives.parquet and .csv (t, model, class, z1..zd) and
    RUN/trajectories.png (each model's first perspective over time; bold: class means). Works on
    the complete steps of an interrupted run.
    """
    from .engine import load_history
    from .errors import InputError
    from .plots import trajectories_png
    from .store import write_csv, write_parquet

    if not (run_dir / "run.json").exists():
        raise InputError("not a run folder (no run.json)", source=str(run_dir))
    hist = load_history(run_dir, n_components=n_components)
    if hist is None:
        raise InputError("no complete evaluation snapshot yet", source=str(run_dir))
    table = hist.perspectives
    write_parquet(run_dir / "perspectives.parquet", table)
    write_csv(run_dir / "perspectives.csv", table)
    trajectories_png(table, run_dir / "trajectories.png")
    steps = sorted(table["t"].unique())
    out_console.print(
        f"{table['model'].nunique()} models x {len(steps)} snapshots (t = {steps[0]}..{steps[-1]}),"
        f" d = {hist.space.n_components_} -> {run_dir}/perspectives.parquet, trajectories.png"
    )


def main() -> None:  # pragma: no cover - console entry
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
