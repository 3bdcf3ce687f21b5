"""The package keeps its shape: import contracts, no import circles, short modules."""

import ast
import os
from pathlib import Path

import grimp

import lst_pipeline

PACKAGE = Path(lst_pipeline.__file__).parent
ROOT = PACKAGE.parent
#: issue 14's limits; numba kernels are exempt (one compiled function per kernel)
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80


def test_import_contracts_hold():
    """pyproject.toml's [tool.importlinter] layers: kernels, model and planning stay apart."""
    from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

    cwd = os.getcwd()
    os.chdir(ROOT)  # the contracts live in the repository's pyproject.toml
    try:
        assert lint_imports(no_cache=True) == EXIT_STATUS_SUCCESS
    finally:
        os.chdir(cwd)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack, on_stack, found = [], set(), []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circles():
    """Lazy imports inside functions count too: a circle is a circle, however deferred."""
    graph = grimp.build_graph("lst_pipeline", cache_dir=None, exclude_type_checking_imports=True)
    assert len(graph.modules) > 60  # the whole package was read
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}

    class Graph:
        modules = frozenset(edges)

        def find_modules_directly_imported_by(self, m):
            return edges.get(m, set())

    assert _cycles(Graph()) == [["a", "b", "c"]]


def _is_numba_kernel(node: ast.FunctionDef, parents: list[ast.AST]) -> bool:
    names = {ast.unparse(d).split("(")[0] for d in node.decorator_list}
    return bool(names & {"njit", "numba.njit", "jit"}) or any(
        isinstance(p, ast.FunctionDef) and p.name == "_kernels" for p in parents) \
        or node.name == "_kernels"


def _long_functions(node: ast.AST, parents: list[ast.AST]) -> list[ast.FunctionDef]:
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            length = child.end_lineno - child.lineno + 1
            if length > MAX_FUNCTION_LINES and not _is_numba_kernel(child, parents):
                found.append(child)
        found += _long_functions(child, [*parents, child])
    return found


def test_modules_and_functions_are_short():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        name = path.relative_to(ROOT).as_posix()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long.append(f"{name}: {len(source.splitlines())} lines")

        long += [f"{name}:{f.lineno} {f.name}: {f.end_lineno - f.lineno + 1} lines"
                 for f in _long_functions(ast.parse(source), [])]
    assert long == []
