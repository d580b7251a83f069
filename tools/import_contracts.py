"""An import-linter contract type the built-in ones lack: an allow-list of imports.

`lint-imports` finds this module through `contract_types` in pyproject.toml (it puts the
working directory on sys.path). Needs `include_external_packages = true`.
"""

from __future__ import annotations

import sys
from typing import cast

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.helpers import module_expressions_to_modules
from importlinter.domain.imports import ModuleExpression


class PureContract(Contract):
    """`source_modules` import only themselves, the standard library and `allowed_packages`.

    Configuration options:
        - source_modules:   the modules (and their descendants) that must stay pure.
        - allowed_packages: top-level names of the third-party packages declared pure.
    """

    type_name = "pure"

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    allowed_packages = fields.SetField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        # Options hold parsed values once the contract is built (the class declares the fields).
        allowed = cast("set[str]", self.allowed_packages) | set(sys.stdlib_module_names)
        sources = cast("set[ModuleExpression]", self.source_modules)
        illegal: list[tuple[str, str, tuple[int, ...]]] = []
        for source in module_expressions_to_modules(graph, sources):
            package = source.name
            for importer in sorted({package} | graph.find_descendants(package)):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    inside = imported == package or imported.startswith(package + ".")
                    if inside or imported.split(".")[0] in allowed:
                        continue
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = tuple(d["line_number"] for d in details)
                    illegal.append((importer, imported, lines))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for importer, imported, lines in check.metadata["illegal"]:
            where = ", ".join(f"l.{n}" for n in lines)
            output.print_error(f"- {importer} -> {imported} ({where})", bold=False)
            output.new_line()
