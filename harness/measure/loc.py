"""What a variant's source costs to write: logical lines of code and a hash of that source.

Read from the files, never by importing them, so that listing or planning a suite does not
import TensorFlow. A logical line is a Python statement as the tokenizer ends it: a call the
formatter spreads over five lines counts once, so the number does not depend on line length.
Comments, blank lines and docstrings are not counted.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tokenize
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

# The contract every variant imports: its types are the harness' boundary, not the variant's
# own code, so counting it would add the same lines to everyone.
CONTRACT_MODULES = frozenset({"variants", "variants.base"})


_DOC_OWNERS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_NOT_CODE = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENCODING,
    tokenize.ENDMARKER,
}


@dataclass(frozen=True)
class SourceInfo:
    files: tuple[Path, ...]  # the variant's module first, then the local modules it imports
    loc: int
    sha256: str
    api_level: str | None  # as declared in the class body, when it is a plain string
    imports: frozenset[str]  # every module the counted files import (tells if it needs TF)


def _docstring_lines(tree: ast.Module) -> set[int]:
    """First lines of the module, class and function docstrings."""
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, _DOC_OWNERS))]
    lines = set()
    for node in nodes:
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            if isinstance(body[0].value.value, str):
                lines.add(body[0].lineno)
    return lines


def logical_lines(source: str) -> int:
    """Statements in `source`, docstrings excluded."""
    docstrings = _docstring_lines(ast.parse(source))
    count = 0
    first_row: int | None = None  # where the current statement starts
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in _NOT_CODE:
            if tok.type == tokenize.NEWLINE and first_row is not None:
                count += first_row not in docstrings
                first_row = None
            continue
        if first_row is None:
            first_row = tok.start[0]
    if first_row is not None:  # a last statement without a trailing newline
        count += first_row not in docstrings
    return count


def _imported_modules(tree: ast.Module, module_name: str) -> set[str]:
    """Absolute names of the modules `tree` imports, relative imports resolved."""
    package = module_name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".strip(".")
            names.add(base)
            # `from pkg import mod` imports a module too; a name that is not one is ignored below
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _module_file(name: str, roots: dict[str, Path]) -> Path | None:
    """The .py file of module `name` if its top-level package is one of `roots` (the folder
    holding that package), else None: only local code is counted, not libraries."""
    top, *rest = name.split(".")
    root = roots.get(top)
    if root is None:
        return None
    path = root.joinpath(top, *rest)
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def variant_sources(module_name: str, module_file: Path) -> list[Path]:
    """The variant's module and, transitively, the local modules it imports (its own package,
    and `variants.*` such as keras_common), without the shared contract."""
    import variants

    top = module_name.split(".")[0]
    roots = {
        "variants": Path(variants.__file__).resolve().parent.parent,
        top: module_file.resolve().parents[module_name.count(".")],
    }
    files = [module_file.resolve()]
    queue = [(module_name, files[0])]
    while queue:
        name, file = queue.pop()
        for dep in sorted(_imported_modules(ast.parse(file.read_text("utf-8")), name)):
            if dep in CONTRACT_MODULES or dep.endswith(".__init__"):
                continue
            dep_file = _module_file(dep, roots)
            if dep_file is None or dep_file.name == "__init__.py" or dep_file in files:
                continue
            files.append(dep_file)
            queue.append((dep, dep_file))
    return files


def declared_api_level(tree: ast.Module, class_name: str) -> str | None:
    """`api_level = "..."` from the class body, or from a base class in the same module."""
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    seen: set[str] = set()
    name: str | None = class_name
    while name in classes and name not in seen:
        seen.add(name)
        node = classes[name]
        for stmt in node.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else []
            if isinstance(stmt, ast.AnnAssign):
                targets = [stmt.target]
            value = getattr(stmt, "value", None)
            for target in targets:
                if isinstance(target, ast.Name) and target.id == "api_level":
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        return value.value
        # follow the first base class defined in this module
        name = next((b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes), None)
    return None


def module_file(module_name: str) -> Path | None:
    """The file of an importable module, found without running it (its parent packages are
    imported, which for `variants` is the light registry)."""
    try:
        spec = find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def source_info(variant_path: str, file: Path | None = None) -> SourceInfo | None:
    """Line count, hash and declared API level of the class at `module:Class`; None when its
    source cannot be found. `file` skips the lookup when the module's file is already known."""
    module_name, _, class_name = variant_path.partition(":")
    file = file or module_file(module_name)
    if file is None:
        return None
    files = variant_sources(module_name, file)
    digest = hashlib.sha256()
    loc = 0
    imports: set[str] = set()
    for f in files:
        data = f.read_bytes()
        digest.update(data)
        loc += logical_lines(data.decode("utf-8"))
        imports |= _imported_modules(ast.parse(data), module_name)
    api_level = declared_api_level(ast.parse(files[0].read_text("utf-8")), class_name)
    return SourceInfo(tuple(files), loc, digest.hexdigest(), api_level, frozenset(imports))
