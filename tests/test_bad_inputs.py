"""Bad run configs and option values, as a careless or hostile user gives them: each one is
refused before any work with one line naming the file (or option), the field and the value,
exit code 2, no traceback, nothing written and no input changed."""

from __future__ import annotations

import copy
import os

import pytest
import yaml
from badinput import FAKE_CONFIG, Case, check_case, invoke

BASE = FAKE_CONFIG
DELETE = object()


def variant(**changes) -> str:
    """BASE as YAML with ``changes`` (dotted keys, ``__`` for dots) applied."""
    raw = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = raw
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        last = int(keys[-1]) if isinstance(node, list) else keys[-1]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return yaml.safe_dump(raw, sort_keys=False)


def config_case(id: str, expect: list[str], **changes) -> Case:
    """``run cfg.yaml`` of BASE with ``changes``; the error names cfg.yaml and ``expect``."""
    return Case(
        id,
        ["run", "cfg.yaml"],
        ["cfg.yaml", *expect],
        files={"cfg.yaml": variant(**changes)},
        writes_nothing=True,
    )


def comm(spec: dict) -> dict:
    return {"communication": spec}


ADV = {"type": "adversary", "adversary": "a-1", "targets": 1, "every": 2}

CONFIG_CASES = [
    config_case("steps-zero", ["steps"], steps=0),
    config_case("steps-negative", ["steps"], steps=-3),
    config_case("steps-text", ["steps", "ten"], steps="ten"),
    config_case("steps-fraction", ["steps"], steps=2.5),
    config_case("steps-bool", ["steps"], steps=True),
    config_case("steps-list", ["steps"], steps=[1]),
    config_case("steps-huge", ["steps"], steps=10**12),
    config_case("seed-negative", ["seed", "-1"], seed=-1),
    config_case("seed-text", ["seed"], seed="abc"),
    config_case("seed-fraction", ["seed"], seed=0.5),
    config_case("name-escapes", ["name", "../../x"], name="../../x"),
    config_case("name-slash", ["name"], name="a/b"),
    config_case("name-empty", ["name"], name=""),
    config_case("name-dot", ["name"], name=".."),
    config_case("name-number", ["name"], name=5),
    config_case("bank-unknown", ["question_bank", "nope"], question_bank="nope"),
    config_case("bank-number", ["question_bank"], question_bank=5),
    # "²".isdigit() is true and int("²") a ValueError: a traceback (isdecimal is the check)
    config_case("bank-yahoo-superscript", ["yahoo:Health:²"], question_bank="yahoo:Health:²"),
    config_case("bank-missing", ["question_bank"], question_bank=DELETE),
    config_case("unknown-key", ["stepz"], stepz=3),
    config_case("groups-empty", ["groups"], groups=[]),
    config_case("groups-text", ["groups"], groups="a"),
    config_case("groups-missing", ["groups"], groups=DELETE),
    config_case("group-count-zero", ["groups.0.count"], groups__0__count=0),
    config_case("group-count-negative", ["groups.0.count"], groups__0__count=-2),
    config_case("group-count-text", ["groups.0.count"], groups__0__count="two"),
    config_case("group-name-space", ["groups.0.name"], groups__0__name="a b"),
    config_case("group-label-blank", ["groups.0.label"], groups__0__label=" "),
    config_case("group-model-blank", ["groups.0.model"], groups__0__model="  "),
    config_case("group-name-missing", ["groups.0.name"], groups__0__name=DELETE),
    config_case("group-duplicate", ["repeated"], groups__1__name="a"),
    config_case("group-backend", ["groups.0.backend", "nope"], groups__0__backend="nope"),
    config_case("group-format", ["groups.0.prompt_format"], groups__0__prompt_format="xml"),
    config_case("group-unknown-key", ["groups.0.colour"], groups__0__colour="red"),
    config_case("group-learning-text", ["groups.0.learning"], groups__0__learning="maybe"),
    config_case("join-after-end", ["groups.0.join_at"], groups__0__join_at=5),
    config_case("join-negative", ["groups.0.join_at"], groups__0__join_at=-1),
    config_case("leave-zero", ["groups.0.leave_at"], groups__0__leave_at=0),
    config_case(
        "leave-before-join",
        ["groups.0.leave_at"],
        groups__0__join_at=2,
        groups__0__leave_at=1,
    ),
    config_case("leave-after-end", ["groups.0.leave_at"], groups__0__leave_at=9),
    config_case("everyone-leaves", ["leave_at"], groups__0__leave_at=1, groups__1__leave_at=1),
    config_case("nobody-at-start", ["join_at"], groups__0__join_at=1, groups__1__join_at=1),
    config_case(
        "group-init-sample-too-big",
        ["groups.0.init.sample_size"],
        groups__0__init={"bank": "neutral", "sample_size": 100000},
    ),
    config_case(
        "group-init-sample-zero",
        ["groups.0.init.sample_size"],
        groups__0__init={"bank": "neutral", "sample_size": 0},
    ),
    config_case(
        "group-init-bank-unknown",
        ["groups.0.init.bank", "nope"],
        groups__0__init={"bank": "nope", "sample_size": 2},
    ),
    config_case(
        "group-init-method",
        ["groups.0.init.method"],
        groups__0__init={"bank": "neutral", "sample_size": 2, "method": "qlora"},
    ),
    config_case(
        "group-init-lr-zero",
        ["groups.0.init.lr"],
        groups__0__init={"bank": "neutral", "sample_size": 2, "lr": 0},
    ),
    config_case(
        "group-init-epochs-text",
        ["groups.0.init.epochs"],
        groups__0__init={"bank": "neutral", "sample_size": 2, "epochs": "three"},
    ),
    config_case("group-init-not-mapping", ["groups.0.init"], groups__0__init="yes"),
    config_case("questions-zero", ["interaction.questions"], interaction__questions=0),
    config_case("questions-too-many", ["interaction.questions"], interaction__questions=10**6),
    config_case("questions-missing", ["interaction.questions"], interaction__questions=DELETE),
    config_case("mechanic-unknown", ["interaction.mechanic"], interaction__mechanic="debate"),
    config_case(
        "temperature-negative",
        ["interaction.sampling.temperature"],
        interaction__sampling={"temperature": -1},
    ),
    config_case(
        "top-p-above-one", ["interaction.sampling.top_p"], interaction__sampling={"top_p": 2}
    ),
    config_case(
        "max-new-tokens-huge",
        ["interaction.sampling.max_new_tokens"],
        interaction__sampling={"max_new_tokens": 100000000},
    ),
    config_case(
        "max-new-tokens-zero",
        ["interaction.sampling.max_new_tokens"],
        interaction__sampling={"max_new_tokens": 0},
    ),
    config_case(
        "do-sample-text",
        ["interaction.sampling.do_sample"],
        interaction__sampling={"do_sample": "maybe"},
    ),
    config_case("update-lr-negative", ["update.lr"], update={"lr": -1}),
    config_case("update-epochs-zero", ["update.epochs"], update={"epochs": 0}),
    config_case("update-method", ["update.method"], update={"method": "x"}),
    config_case("update-batch-zero", ["update.batch_size"], update={"batch_size": 0}),
    config_case("update-unknown", ["update.momentum"], update={"momentum": 0.9}),
    config_case("eval-every-zero", ["evaluation.every"], evaluation__every=0),
    config_case("eval-replicates-zero", ["evaluation.replicates"], evaluation__replicates=0),
    config_case("eval-replicates-text", ["evaluation.replicates"], evaluation__replicates="abc"),
    config_case("eval-n-prompts-zero", ["evaluation.n_prompts"], evaluation__n_prompts=0),
    config_case("eval-n-prompts-huge", ["evaluation.n_prompts"], evaluation__n_prompts=10**6),
    config_case("eval-prompts-missing", ["nope.jsonl"], evaluation__prompts="nope.jsonl"),
    config_case("eval-prompts-number", ["evaluation.prompts"], evaluation__prompts=7),
    config_case("eval-prompts-empty-list", ["evaluation.prompts"], evaluation__prompts=[]),
    # ignored without a word: the run fine-tuned every weight
    config_case("update-memory-k-of-full", ["update", "memory_k"], update={"memory_k": 10}),
    config_case(
        "update-lora-r-of-memory", ["update", "lora_r"], update={"method": "memory", "lora_r": 4}
    ),
    config_case("eval-prompts-blank", ["evaluation.prompts"], evaluation__prompts="  "),
    config_case("comm-unknown-type", ["communication", "star"], **comm({"type": "star"})),
    config_case("comm-no-type", ["communication", "type"], **comm({})),
    config_case("comm-text", ["communication"], communication="complete"),
    config_case(
        "er-p-text", ["communication.p", "half"], **comm({"type": "erdos_renyi", "p": "half"})
    ),
    config_case("er-p-above-one", ["communication.p"], **comm({"type": "erdos_renyi", "p": 1.5})),
    config_case("er-p-missing", ["communication.p"], **comm({"type": "erdos_renyi"})),
    config_case(
        "adjacency-unknown-model",
        ["communication.edges", "zz"],
        **comm({"type": "adjacency", "edges": [["a-1", "zz"]]}),
    ),
    config_case(
        "adjacency-arity",
        ["communication.edges"],
        **comm({"type": "adjacency", "edges": [["a-1"]]}),
    ),
    config_case(
        "adjacency-self-loop",
        ["communication.edges", "a-1"],
        **comm({"type": "adjacency", "edges": [["a-1", "a-1"]]}),
    ),
    config_case(
        "switch-at-zero",
        ["communication.at"],
        **comm(
            {
                "type": "switch",
                "at": 0,
                "before": {"type": "complete"},
                "after": {"type": "complete"},
            }
        ),
    ),
    config_case(
        "switch-at-after-end",
        ["communication.at"],
        **comm(
            {
                "type": "switch",
                "at": 9,
                "before": {"type": "complete"},
                "after": {"type": "complete"},
            }
        ),
    ),
    config_case(
        "switch-no-before",
        ["communication.before"],
        **comm({"type": "switch", "at": 1, "after": {"type": "complete"}}),
    ),
    config_case(
        "switch-bad-inner",
        ["communication.after", "ring"],
        **comm(
            {"type": "switch", "at": 1, "before": {"type": "complete"}, "after": {"type": "ring"}}
        ),
    ),
    config_case(
        "periodic-every-zero",
        ["communication.every"],
        **comm(
            {
                "type": "periodic",
                "every": 0,
                "base": {"type": "complete"},
                "alternate": {"type": "complete"},
            }
        ),
    ),
    config_case(
        "periodic-offset-never",
        ["communication.offset"],
        **comm(
            {
                "type": "periodic",
                "every": 2,
                "offset": 2,
                "base": {"type": "complete"},
                "alternate": {"type": "intra_class"},
            }
        ),
    ),
    config_case(
        "periodic-offset-negative",
        ["communication.offset"],
        **comm(
            {
                "type": "periodic",
                "every": 2,
                "offset": -1,
                "base": {"type": "complete"},
                "alternate": {"type": "intra_class"},
            }
        ),
    ),
    config_case("adversary-every-zero", ["communication.every"], **comm({**ADV, "every": 0})),
    config_case("adversary-every-text", ["communication.every"], **comm({**ADV, "every": "2"})),
    config_case(
        "adversary-targets-negative", ["communication.targets"], **comm({**ADV, "targets": -1})
    ),
    config_case(
        "adversary-targets-too-many", ["communication.targets"], **comm({**ADV, "targets": 9})
    ),
    config_case(
        "adversary-unknown", ["communication.adversary", "zz"], **comm({**ADV, "adversary": "zz"})
    ),
    config_case("adversary-offset-never", ["communication.offset"], **comm({**ADV, "offset": 3})),
    config_case(
        "adversary-every-after-end",
        ["communication.every"],
        **comm({**ADV, "every": 5}),
    ),
    config_case(
        "isolate-unknown",
        ["communication.models", "zz"],
        **comm({"type": "isolate", "models": ["zz"]}),
    ),
    config_case("union-empty", ["communication.of"], **comm({"type": "union", "of": []})),
    config_case(
        "union-bad-member",
        ["communication.of.1.p"],
        **comm({"type": "union", "of": [{"type": "complete"}, {"type": "erdos_renyi", "p": 2}]}),
    ),
    config_case(
        "database-unknown",
        ["communication.writers", "zz"],
        **comm({"type": "database", "writers": ["zz"], "readers": ["a"]}),
    ),
    config_case("notes-number", ["notes"], notes=5),
    config_case(
        "db-reader-unknown",
        ["databases.0.read.0.models", "zz"],
        databases=[{"name": "forum", "read": [{"models": ["zz"]}]}],
    ),
    config_case(
        "db-retrieval-by-fine-tuned",
        ["databases.0.read.0.models", "memory"],
        databases=[{"name": "forum", "read": [{"models": "all"}]}],
    ),
    config_case(
        "db-initial-file-missing",
        ["databases.0.initial.bank", "nope.csv"],
        databases=[{"name": "forum", "initial": {"bank": "nope.csv"}}],
    ),
    config_case(
        "db-window-backwards",
        ["databases.0.write.0.until", "after since"],
        databases=[{"name": "forum", "write": [{"since": 2, "until": 1}]}],
    ),
    config_case(
        "db-name-taken",
        ["databases.0.name", "a"],
        databases=[{"name": "a"}],
    ),
]

FILE_CASES = [
    Case("yaml-empty", ["run", "cfg.yaml"], ["cfg.yaml"], files={"cfg.yaml": ""}),
    Case("yaml-list", ["run", "cfg.yaml"], ["cfg.yaml", "mapping"], files={"cfg.yaml": "- 1\n"}),
    Case("yaml-scalar", ["run", "cfg.yaml"], ["cfg.yaml"], files={"cfg.yaml": "steps\n"}),
    Case(
        "yaml-syntax",
        ["run", "cfg.yaml"],
        ["cfg.yaml", "yaml", "line 2, column 1", "started on line 1, column 4"],
        files={"cfg.yaml": "a: [1\n"},
    ),
    Case(
        "yaml-tabs",
        ["run", "cfg.yaml"],
        ["cfg.yaml", "line 2, column 1", "'\\t'"],
        files={"cfg.yaml": "a:\n\t- 1\n"},
    ),
    Case(
        "yaml-not-utf8",
        ["run", "cfg.yaml"],
        ["cfg.yaml", "utf-8"],
        files={"cfg.yaml": "name: caf\xe9\n".encode("latin-1")},
    ),
    Case("yaml-binary", ["run", "cfg.yaml"], ["cfg.yaml"], files={"cfg.yaml": bytes(range(256))}),
    Case(
        "yaml-duplicate-key",
        ["run", "cfg.yaml"],
        ["cfg.yaml", "steps"],
        files={"cfg.yaml": variant() + "steps: 5\n"},
    ),
    Case("yaml-missing", ["run", "nothere.yaml"], ["nothere.yaml"]),
    Case(
        "yaml-folder", ["run", "sub.yaml"], ["sub.yaml"], setup=lambda p: (p / "sub.yaml").mkdir()
    ),
    Case("preset-unknown", ["run", "no-such-preset"], ["no-such-preset"]),
]


RUN_OPTION_CASES = [
    Case(
        "set-bad-yaml",
        ["run", "cfg.yaml", "--set", "steps=[1"],
        ["--set", "steps=[1"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-no-equals",
        ["run", "cfg.yaml", "--set", "steps"],
        ["--set"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-unknown-key",
        ["run", "cfg.yaml", "--set", "stepz=3"],
        ["stepz"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-index-out",
        ["run", "cfg.yaml", "--set", "groups.9.count=2"],
        ["groups.9"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-superscript-index",
        ["run", "cfg.yaml", "--set", "groups.¹.count=2"],
        ["groups.¹"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-into-scalar",
        ["run", "cfg.yaml", "--set", "steps.x=1"],
        ["steps.x"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-bad-value",
        ["run", "cfg.yaml", "--set", "steps=0"],
        ["steps"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "set-bad-index",
        ["run", "cfg.yaml", "--set", "groups.x.count=2"],
        ["groups.x"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "out-is-file",
        ["run", "cfg.yaml", "--out", "cfg.yaml"],
        ["--out", "cfg.yaml"],
        files={"cfg.yaml": variant()},
    ),
    Case(
        "out-holds-config",
        ["run", "cfg/config.yaml", "--out", "cfg"],
        ["config.yaml"],
        files={"cfg/config.yaml": variant()},
    ),
    Case(
        "out-under-a-file",
        ["run", "cfg.yaml", "--out", "cfg.yaml/x"],
        ["cfg.yaml/x", "not a folder"],
        files={"cfg.yaml": variant()},
    ),
    Case(
        "sweep-out-under-a-file",
        ["run", "cfg.yaml", "--sweep", "--out", "cfg.yaml/x"],
        ["cfg.yaml", "is a file, not a folder"],
        files={"cfg.yaml": variant(sweep={"conditions": [{"name": "a"}]})},
    ),
    Case(
        "out-here",
        ["run", "config.yaml", "--out", "."],
        ["config.yaml"],
        files={"config.yaml": variant()},
    ),
    Case(
        "out-not-a-run",
        ["run", "cfg.yaml", "--out", "mine"],
        ["mine", "not a run folder"],
        files={"cfg.yaml": variant(), "mine/notes.txt": "my notes"},
    ),
    Case("resume-missing", ["run", "--resume", "nothere"], ["nothere"]),
    Case(
        "resume-file", ["run", "--resume", "cfg.yaml"], ["cfg.yaml"], files={"cfg.yaml": variant()}
    ),
    Case(
        "resume-empty-folder",
        ["run", "--resume", "empty"],
        ["empty"],
        setup=lambda p: (p / "empty").mkdir(),
    ),
    Case("no-config", ["run"], ["preset"]),
    Case("jobs-zero", ["run", "cs2-adversary", "--sweep", "--jobs", "0"], ["--jobs"]),
    Case(
        "jobs-without-sweep",
        ["run", "cfg.yaml", "--jobs", "2"],
        ["--sweep"],
        files={"cfg.yaml": variant()},
    ),
    Case(
        "conditions-without-sweep",
        ["run", "cfg.yaml", "--conditions", "x"],
        ["--sweep"],
        files={"cfg.yaml": variant()},
    ),
    Case(
        "sweep-unknown-condition",
        ["run", "cs2-adversary", "--sweep", "--conditions", "nope"],
        ["nope"],
        writes_nothing=True,
    ),
    Case(
        "sweep-bad-seeds",
        ["run", "cs2-adversary", "--sweep", "--seeds", "a,b"],
        ["--seeds", "a"],
        writes_nothing=True,
    ),
    Case(
        "sweep-negative-seed",
        ["run", "cs2-adversary", "--sweep", "--seeds", "-1"],
        ["seed"],
        writes_nothing=True,
    ),
    Case(
        "sweep-without-grid",
        ["run", "cfg.yaml", "--sweep"],
        ["cfg.yaml", "sweep"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "seeds-without-sweep",
        ["run", "cfg.yaml", "--seeds", "5"],
        ["--seeds", "--sweep", "--set seed=N"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "resume-with-set-and-no-config",
        ["run", "--resume", "r", "--set", "steps=9", "--model", "m"],
        ["--model, --set", "a resumed run"],
        writes_nothing=True,
    ),
    Case("resume-with-out", ["run", "--resume", "r", "--out", "o"], ["--out"], writes_nothing=True),
    Case(
        "sweep-seed-twice",
        ["run", "cfg.yaml", "--sweep"],
        ["sweep.seeds", "each seed once"],
        files={"cfg.yaml": variant(sweep={"seeds": [0, 0], "conditions": [{"name": "a"}]})},
        writes_nothing=True,
    ),
    Case(
        "sweep-condition-outside-out",
        ["run", "cfg.yaml", "--sweep"],
        ["sweep.conditions[1].name", "'..'", "folder name"],
        files={"cfg.yaml": variant(sweep={"conditions": [{"name": "a"}, {"name": ".."}]})},
        writes_nothing=True,
    ),
    Case(
        "sweep-seed-with-underscore",
        ["run", "cs2-adversary", "--sweep", "--seeds", "1_0"],
        ["--seeds", "1_0"],
        writes_nothing=True,
    ),
    Case(
        "scale-unknown", ["run", "cs2-adversary", "--scale", "huge"], ["huge"], writes_nothing=True
    ),
    Case(
        "scale-on-a-file",
        ["run", "cfg.yaml", "--scale", "paper"],
        ["paper"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "device-unknown",
        ["run", "cfg.yaml", "--device", "gpu9"],
        ["gpu9"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "dtype-unknown",
        ["run", "cfg.yaml", "--dtype", "int4"],
        ["dtype", "int4"],
        files={"cfg.yaml": variant()},
        writes_nothing=True,
    ),
    Case(
        "model-missing-folder",
        ["run", "quickstart", "--model", "./no-model-here"],
        ["no-model-here"],
        writes_nothing=True,
    ),
]

OTHER_CASES = [
    Case("init-n-models-zero", ["init", "--n-models", "0"], ["--n-models"]),
    Case("init-n-models-negative", ["init", "--n-models", "-1"], ["--n-models"]),
    Case("init-sample-zero", ["init", "--sample-size", "0"], ["--sample-size"]),
    Case("init-sample-too-big", ["init", "--sample-size", "100000"], ["--sample-size"]),
    Case("init-bank-unknown", ["init", "--bank", "nope"], ["nope"]),
    Case("init-method", ["init", "--method", "qlora"], ["--method", "qlora"]),
    Case("init-epochs-zero", ["init", "--epochs", "0"], ["--epochs"]),
    Case("init-lr-zero", ["init", "--lr", "0"], ["--lr"]),
    Case("init-lr-text", ["init", "--lr", "fast"], ["--lr"]),
    Case("init-lr-inf", ["init", "--lr", "inf"], ["--lr", "finite"]),
    Case("init-batch-zero", ["init", "--batch-size", "0"], ["--batch-size"]),
    Case("init-format", ["init", "--prompt-format", "xml"], ["--prompt-format", "xml"]),
    Case("init-prefix-escapes", ["init", "--prefix", "../x"], ["--prefix", "../x"]),
    Case("init-seed-negative", ["init", "--seed", "-1"], ["--seed"]),
    Case(
        "init-base-missing",
        ["init", "--base", "./no-model-here", "--n-models", "1", "--sample-size", "2"],
        ["no-model-here"],
    ),
    Case("figure2-max-prompts-negative", ["figure2", "--max-prompts", "-1"], ["--max-prompts"]),
    Case("figure2-max-prompts-zero", ["figure2", "--max-prompts", "0"], ["--max-prompts"]),
    Case("figure2-out-file", ["figure2", "--out", "f.txt"], ["f.txt"], files={"f.txt": "x"}),
    Case("figure2-device", ["figure2", "--device", "tpu"], ["tpu"]),
    Case("analyze-missing", ["analyze", "nothere"], ["nothere"]),
    Case("analyze-file", ["analyze", "f.txt"], ["f.txt"], files={"f.txt": "x"}),
    Case("analyze-empty", ["analyze", "empty"], ["empty"], setup=lambda p: (p / "empty").mkdir()),
    Case(
        "analyze-components-zero",
        ["analyze", "r", "--n-components", "0"],
        ["--n-components"],
        setup=lambda p: (p / "r").mkdir(),
    ),
    Case(
        "analyze-components-text",
        ["analyze", "r", "--n-components", "two"],
        ["--n-components"],
        setup=lambda p: (p / "r").mkdir(),
    ),
    Case("report-missing", ["report", "nothere"], ["nothere"]),
    Case("report-file", ["report", "f.txt"], ["f.txt"], files={"f.txt": "x"}),
    Case("results-missing", ["results", "nothere"], ["nothere"]),
    Case(
        "results-doc-missing",
        ["results", "runs", "--doc", "no.md"],
        ["no.md"],
        setup=lambda p: (p / "runs").mkdir(),
    ),
    Case(
        "results-scale",
        ["results", "runs", "--doc", "r.md", "--scale", "huge"],
        ["huge"],
        files={"r.md": "# r\n"},
        setup=lambda p: (p / "runs").mkdir(),
    ),
    Case(
        "instruct-data-missing",
        ["instruct-tune", "--base", "bundled", "--data", "no.jsonl", "--out", "o"],
        ["no.jsonl"],
    ),
    Case(
        "instruct-epochs-zero",
        ["instruct-tune", "--base", "bundled", "--data", "d.jsonl", "--out", "o", "--epochs", "0"],
        ["--epochs"],
        files={"d.jsonl": "{}\n"},
    ),
    Case(
        "instruct-lr-inf",
        ["instruct-tune", "--base", "bundled", "--data", "d.jsonl", "--out", "o", "--lr", "inf"],
        ["--lr", "finite"],
        files={"d.jsonl": "{}\n"},
    ),
    Case(
        "instruct-out-holds-other-files",
        ["instruct-tune", "--base", "bundled", "--data", "d.jsonl", "--out", "mine"],
        ["mine", "holds other files"],
        files={"d.jsonl": "{}\n", "mine/notes.txt": "keep"},
    ),
    Case(
        "instruct-out-is-base",
        ["instruct-tune", "--base", "b", "--data", "d.jsonl", "--out", "b"],
        ["replace its base"],
        files={"d.jsonl": "{}\n", "b/config.json": '{"model_type": "llama"}'},
    ),
    Case(
        "instruct-out-here",
        ["instruct-tune", "--base", "bundled", "--data", "d.jsonl", "--out", "."],
        ["current folder"],
        files={"d.jsonl": "{}\n"},
    ),
    Case(
        "instruct-nothing-passes-the-filter",
        ["instruct-tune", "--base", "bundled", "--data", "d.jsonl", "--out", "o"],
        ["d.jsonl", "paper's filter", "open_qa"],
        files={
            "d.jsonl": '{"instruction": "Sort these.", "context": "", "response": "a, b", '
            '"category": "classification"}\n'
        },
        writes_nothing=True,
    ),
    Case(
        "instruct-limit-zero",
        ["instruct-tune", "--base", "bundled", "--data", "d.jsonl", "--out", "o", "--limit", "0"],
        ["--limit"],
        files={"d.jsonl": "{}\n"},
    ),
]

ALL = CONFIG_CASES + FILE_CASES + RUN_OPTION_CASES + OTHER_CASES


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_refused_cleanly(case, tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / ".cache"))
    try:
        check_case(case, tmp_path)
    finally:
        for p in tmp_path.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)


def test_there_are_many_cases():
    assert len({c.id for c in ALL}) == len(ALL) >= 150


def test_error_line_names_file_field_and_value(tmp_path):
    line = check_case(config_case("x", [], seed=-1), tmp_path)
    assert line.startswith("error: cfg.yaml, field 'seed'") and "-1" in line


def test_markup_in_messages_is_printed_as_is(tmp_path):
    """Brackets in names and values are text, not rich markup."""
    cfg = variant(question_bank="x[/].jsonl")
    (tmp_path / "c[red].yaml").write_text(cfg)
    result = invoke(["run", "c[red].yaml"], tmp_path)
    assert result.exit_code == 2
    assert "c[red].yaml" in result.output and "x[/].jsonl" in result.output


def test_a_refused_run_creates_no_run_folder(tmp_path):
    (tmp_path / "cfg.yaml").write_text(variant(seed=-1))
    invoke(["run", "cfg.yaml"], tmp_path)
    assert not (tmp_path / "runs").exists()


def test_a_valid_config_still_runs(tmp_path, monkeypatch):
    """The cases above differ from BASE in one value: BASE itself runs to the end."""
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / ".cache"))
    (tmp_path / "cfg.yaml").write_text(variant())
    result = invoke(["run", "cfg.yaml"], tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "bad" / "progress.json").exists()
    assert os.path.getsize(tmp_path / "cfg.yaml") > 0


def test_brackets_in_a_run_folder_name_are_printed_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSPECTIVES_CACHE", str(tmp_path / ".cache"))
    (tmp_path / "cfg.yaml").write_text(variant())
    result = invoke(["run", "cfg.yaml", "--out", "exp[lr=1e-4]"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "run complete: exp[lr=1e-4]/" in result.output
    assert (tmp_path / "exp[lr=1e-4]" / "progress.json").exists()
    again = invoke(["run", "cfg.yaml", "--out", "o[/p]"], tmp_path)
    assert again.exit_code == 0 and "run complete: o[/p]/" in again.output, again.output
