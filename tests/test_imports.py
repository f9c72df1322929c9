"""The package's import structure: no module-level import cycle inside deeprl, and `import deeprl` (which
`deeprl --version` and `--help` pay for) loads neither torch nor Gymnasium until a function needs them."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import deeprl

PACKAGE = Path(deeprl.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """deeprl module -> the deeprl modules it imports at module level (imports inside functions are deferred)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "deeprl":
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name].update(target for target in targets if target in modules and target != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                return [*path[path.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor, path)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node, [])):
            return cycle
    return None


def test_find_cycle_finds_one_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_level_import_cycle_in_deeprl():
    graph = import_graph()
    assert "deeprl.config_file" in graph["deeprl.envs"]  # the graph sees real edges
    assert find_cycle(graph) is None


def test_agent_imports_the_agent_kinds_at_module_level_without_a_cycle():
    """deeprl.load's agent kinds (policies) are imported at module level: the observation helpers the agents use
    live in deeprl.observations, below both, so no import has to be deferred to break agent <-> policies."""
    graph = import_graph()
    assert "deeprl.policies" in graph["deeprl.agent"]
    assert "deeprl.agent" not in graph["deeprl.policies"]
    assert "deeprl.observations" in graph["deeprl.policies"]
    assert find_cycle(graph) is None


def test_import_deeprl_loads_neither_torch_nor_gymnasium_until_used():
    probe = (
        "import sys, deeprl; heavy = [m for m in ('torch', 'gymnasium') if m in sys.modules]; "
        "print(deeprl.__version__, heavy); deeprl.train; print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines() == [f"{deeprl.__version__} []", "True"]


def test_every_public_name_is_the_function_even_after_its_module_is_imported():
    """A submodule named like a public function would replace it on the package once imported: none may be."""
    for module in sorted(import_graph()):
        if module != "deeprl.__main__":  # runs the CLI
            importlib.import_module(module)
    for name in deeprl.__all__:
        if name != "__version__":
            assert inspect.isfunction(getattr(deeprl, name)), name
