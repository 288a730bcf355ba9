"""File-backed target stores: source versions, IU rows and backups, the ledger.

They are the embedded default's production data and survive ``kill -9``. Their
semantics are those of ``cutter.stores.memory_target`` (and of PostgreSQL); the
contract tests in ``tests/pg/test_adapters.py`` run over all three.

Layout (each store has a root of its own; the daemon uses
``<state>/target/{sources,ius,ledger}``)::

    <sources>/versions/<sv_id>.bin      a version's exact bytes              write-once
    <sources>/versions/<sv_id>.json     its SourceVersion (the commit point)  write-once
    <sources>/cuts/<sv_id>.json         the change set that cut it            write-once
    <sources>/current/<doc_id>.json     the document's current SourceVersion  replaced

    <ius>/HEAD.json                     which snapshot holds each document's rows, and
                                        which documents each change set has rows in
    <ius>/docs/<doc_id>/<sha256>.json   every row of one document, named by the sha256
                                        of the file's bytes                   write-once
    <ius>/backups/<backup_id>.json      a Backup, content-addressed           write-once

    <ledger>/ledger.jsonl               one entry per line: seq, prev_hash, entry_hash,
                                        envelope_sha and the canonical envelope bytes
                                        (embedded verbatim as JSON)           replaced

Crash argument. Files are changed in two ways only, both from
``cutter.stores.atomic`` or built on its steps: a *replace* (temp file in the
same directory, fsync, ``os.replace``, fsync the directory) and a *write-once*
create (temp file, fsync, ``os.link`` onto the name, which fails when the name
exists, fsync the directory). Either way a name holds its old bytes or its new
bytes, never a mix, whichever instruction a crash interrupts; at worst a
``.<name>.<random>.tmp`` file is left behind, which no read ever opens.

- ``publish`` writes the bytes, then the version record (write-once: from then
  on the version exists), then replaces the current pointer. A crash in between
  leaves a version that is not current yet; publishing again finishes the job.
  ``content`` checks the bytes against the version's sha256.
- ``mark_cut`` is one write-once create: the first change set wins, in any
  number of processes.
- Every change to IU rows (a whole ``write_staged`` batch, ``enact``,
  ``restore``) writes new document snapshots under new names, then replaces
  ``HEAD.json``: that one rename is the commit point, whatever documents the
  batch touches. Before it, readers see the old HEAD and the old snapshots (the
  new files are not named by anything); after it, the new ones. Snapshots the
  new HEAD no longer names are removed after the rename; a crash before that
  leaves an unreferenced file, never read. A snapshot is checked against the
  sha256 HEAD names, so a changed or truncated one is ``CorruptRecord``.
- A ledger append replaces the whole file with the old bytes, unchanged, plus
  one line: no half entry can ever be read.

Reads never repair: an undecodable file raises ``CorruptRecord`` naming it and
is left exactly as found; a write that would have to read it refuses the same
way and writes nothing. Every id is validated (``cutter.ids``) before a path is
built from it; a hostile one raises ``InvalidIdentifier`` and touches nothing.

Concurrency. One process (the daemon) writes these stores, which the state
directory's owner lock enforces (``cutter.stores.owner``); the one exception is
``publish`` from ``cutter add-document``, safe from another process because it
only creates write-once files and replaces one pointer. Many of the owner's
coroutines may call the stores at once. Each store serialises its writers with an
``anyio.Lock`` held across the worker thread that does the blocking work, so
two appends or two batches cannot lose an update. Use one instance per root in
a process. Readers take no lock: a reader that read the old HEAD and finds its
snapshot removed reads HEAD again.

The stores live one per module: ``file_sources`` (``FileSources``), ``file_ius``
(``FileIUStore``), ``file_ledger`` (``FileLedger``), with the steps they share
(the write-once ``create_once``, root confinement, decoding) in
``file_primitives``. This module is where they are imported from.
"""

from cutter.stores.file_ius import FileIUStore
from cutter.stores.file_ledger import FileLedger
from cutter.stores.file_sources import FileSources, derived_sv_id

__all__ = ["FileIUStore", "FileLedger", "FileSources", "derived_sv_id"]
