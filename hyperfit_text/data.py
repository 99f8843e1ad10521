"""Text sources -> a list of documents: local `.txt` / `.jsonl` files or a Hugging Face dataset.

  data/text/wiki.txt                       documents separated by blank lines
  data/text/stories.jsonl                  one JSON object per line, the document in field `text`
  wikitext:wikitext-103-raw-v1:train       datasets.load_dataset(name, config, split=split), column `text`
  imdb::test                               no config
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hyperfit_core.dataset_names import parse_dataset_spec
from hyperfit_core.errors import HyperfitError
from hyperfit_core.formats import iter_jsonl

_LOCAL_SUFFIXES = (".txt", ".jsonl")
_BLANK_LINES = re.compile(r"\n[ \t]*\n\s*")


@dataclass
class TextSource:
    source: str
    text_field: str = "text"

    @property
    def is_local(self) -> bool:
        return Path(self.source).suffix.lower() in _LOCAL_SUFFIXES or Path(self.source).is_file()

    def load(self) -> list[str]:
        """Non-empty documents in file/dataset order; raises HyperfitError if there are none."""
        docs = self._load_local() if self.is_local else self._load_dataset()
        docs = [doc.strip() for doc in docs if doc and doc.strip()]
        if not docs:
            raise HyperfitError(f"{self.source} holds no text")
        return docs

    def _load_local(self) -> list[str]:
        path = Path(self.source).expanduser()
        if not path.is_file():
            raise HyperfitError(f"text file not found: {path}")
        suffix = path.suffix.lower()
        if suffix not in _LOCAL_SUFFIXES:
            raise HyperfitError(f"{path}: unsupported text file type {suffix!r}; use .txt or .jsonl")
        if suffix == ".jsonl":
            docs = self._jsonl_documents(path)
            if not docs:
                raise HyperfitError(f"{path} is empty")
            return docs
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise HyperfitError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
        if not raw.strip():
            raise HyperfitError(f"{path} is empty")
        return _BLANK_LINES.split(raw)

    def _jsonl_documents(self, path: Path) -> list[str]:
        docs = []
        for number, record in iter_jsonl(path):
            if not isinstance(record, dict) or self.text_field not in record:
                raise HyperfitError(f"{path}:{number}: no field {self.text_field!r}")
            if not isinstance(record[self.text_field], str):
                raise HyperfitError(f"{path}:{number}: field {self.text_field!r} is not a string")
            docs.append(record[self.text_field])
        return docs

    def _load_dataset(self) -> list[str]:
        name, config, split = parse_dataset_spec(self.source)
        import datasets

        try:
            data = datasets.load_dataset(name, config, split=split)
        except Exception as exc:  # datasets raises many types (ConnectionError, FileNotFoundError, ValueError...)
            raise HyperfitError(f"cannot load dataset {name!r} (config {config}, split {split}): "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if self.text_field not in data.column_names:
            raise HyperfitError(f"dataset {name!r} has no column {self.text_field!r} "
                                f"(columns: {', '.join(data.column_names)}); pass --text-field")
        return list(data[self.text_field])

    def describe(self) -> dict:
        return {"source": self.source, "text_field": self.text_field}

