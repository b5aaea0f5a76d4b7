"""Safe loading, checked over the source: nothing in the package, the benchmarks, hub/ or scripts/
can unpickle. (Strict checkpoint loading is tested in test_model.py; manifests that point outside
their root in test_train.py.)"""

import ast

from conftest import REPO

SOURCES = [
    p for folder in ("diverse_embed", "benchmarks", "hub", "scripts", "examples") for p in (REPO / folder).rglob("*.py")
]


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            yield name, {k.arg: ast.unparse(k.value) for k in node.keywords}


def test_no_pickle_anywhere():
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for n in names):
                    problems.append(f"{path}: imports {names}")
        for name, keywords in calls(tree):
            if name.endswith("torch.load") and keywords.get("weights_only") != "True":
                problems.append(f"{path}: {name} without weights_only=True")
            if keywords.get("allow_pickle") == "True":
                problems.append(f"{path}: {name}(allow_pickle=True)")
            if name.endswith(("pickle.load", "pickle.loads")):
                problems.append(f"{path}: {name}")
    assert len(SOURCES) > 20 and not problems, problems
