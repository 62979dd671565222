"""The shape of the code: translate/ never imports proxy/, no module imports itself back
through others (no import circle), and no class in proxy/ grows past ~200 lines.

Read from the source with ast: it holds for every import, lazy ones inside functions too.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"devstral_proxy": ROOT / "proxy" / "devstral_proxy", "devstral_translate": ROOT / "translate" / "devstral_translate"}


def _modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_translate_never_imports_proxy():
    graph = _graph()
    bad = {m: sorted(d for d in deps if d.startswith("devstral_proxy")) for m, deps in graph.items() if m.startswith("devstral_translate")}
    assert not any(bad.values()), bad


def test_no_import_circle():
    graph = _graph()
    # a package's __init__ importing its own submodules is not a circle
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(path[path.index(d) :] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_no_class_in_proxy_over_200_lines_counting_its_mixins():
    """A class's size counts the classes of proxy/ it inherits from: a mixin is no way around it."""
    classes: dict[str, ast.ClassDef] = {}
    for path in PACKAGES["devstral_proxy"].rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                classes[f"{path.name}:{node.name}"] = node
    by_name = {key.split(":")[1]: node for key, node in classes.items()}

    def size(node: ast.ClassDef) -> int:
        own = node.end_lineno - node.lineno + 1
        return own + sum(size(by_name[b.id]) for b in node.bases if isinstance(b, ast.Name) and b.id in by_name)

    big = [f"{key} ({size(node)} lines)" for key, node in classes.items() if size(node) > 200]
    assert not big, big
