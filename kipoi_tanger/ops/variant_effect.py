"""``variant-effect`` over a Kipoi model: kipoi-veff2 scores of the variants of a
VCF, on windows cut from a FASTA around each variant (the model's dataloader is
not used).

Regions. Every ALT allele of ``--vcf`` (a multi-allelic record gives one row
per ALT) gets a reference and an alternative window of the model's input
length ``L`` (the schema, the tanger section or the dataloader's arguments, as
``kipoi-tanger info`` shows; ``--length`` where none fixes it), cut from
``--fasta`` by :func:`kipoi_tanger.variants.variant_windows`: the alleles are
trimmed of their shared bases and the longer one starts at window index
``L // 2 - max(r, a) // 2`` (tangermeme's centring); deletions take the extra
bases they need from the right, insertions drop their surplus on the right
(tangermeme's ``deletion_effect``/``insertion_effect``), so both windows have
``L`` bases; ``--strand -`` mirrors this and reverse-complements both windows.

Scores (``--scores``, kipoi-veff2's names and definitions, see
:mod:`kipoi_tanger.variants.scores`) are applied to every output of the model
(``--output`` picks one, ``--reduce`` applies the declared reduction);
``--rc`` averages each score over the windows and their reverse complements.
Substitutions run on the fast ISM engine when it can vouch for the model
(checked against full forwards on the first batch), indels on full forwards.

Outputs (``-o``):

* ``.h5``: ``ref`` and ``alt`` ``(N, *output_shape)`` (``ref/<name>`` for
  several outputs), one dataset per score (``diff``, ``logit/<name>``...,
  float64), ``metadata/variants/{chrom,pos,id,ref,alt,record,allele,line,kind}``
  (VCF POS, 1-based; ``record`` the 0-based record index, ``allele`` the ALT's
  index in it, ``line`` the VCF line, ``kind`` snv/mnv/insertion/deletion/
  complex) and ``metadata/ranges/{chr,start,end,strand,id}``: the reference
  window's genome interval (0-based, end exclusive). One row per scored ALT.
* ``.tsv``: the same rows and columns (Kipoi's flattened names).
* ``.vcf``/``.vcf.gz``: the input VCF, every record in order, with one
  ``Number=A`` Float INFO field per score, output and output element
  (``KT_<score>_<output>[_<column label>]``, declared in the header; ``.`` for
  a skipped ALT). Outputs with more than one axis (profiles) need ``--output``
  or ``--reduce`` first.
* ``OUT.skipped.tsv`` next to the first output (``OUT`` its name without the
  suffix), always written: every ALT that got no window (``line, chrom, pos, id,
  ref, alt, reason, detail``; reasons ``ref_mismatch``, ``chrom_missing``,
  ``symbolic_allele``, ``bad_allele``, ``ref_equals_alt``, ``off_chromosome``,
  ``allele_too_long``).
  ``--strict`` instead stops at the first such record with one line naming
  the VCF line, before anything is written.

The model's dataloader is not used: the command has no dataloader options
(``--dataloader``, ``--dataloader_args``, ``--example``, ``-n``...), and
``run()`` refuses them in one line.

Units of ``--resume``/``--shard`` are VCF records (blocks of ``--batch_size``
records; a shard's VCF output holds the records of its block, its skipped TSV
those of its block). ``merge SHARD.h5... -o OUT.h5 [OUT.tsv] [OUT.vcf[.gz]]``
joins the HDF5 files and the TSV and VCF outputs asked for, and always writes
``OUT.skipped.tsv``, from each shard's files of the same kind (found from the
names its HDF5 records), into the single run's bytes. Every run checks the fast
path on its own first batch of substitutions, so shards and resumed runs give
the single run's bytes when those checks agree, as they do unless the engine
disagrees with full forwards on some variants only (then a warning names the
fallback). One journal commit per batch: for light models, a larger
``--batch_size`` saves commit time.
"""
import logging
import os
from typing import Dict, List, Optional

import numpy as np

from .base import Op, OpError, Param, name_outputs, to_numpy
from .ism import OutputSelection

log = logging.getLogger(__name__)

#: the key under which a batch's :class:`~kipoi_tanger.variants.VariantBatch` reaches the op
VARIANTS = "_kipoi_tanger_variant_batch"
STRANDS = ("+", "-")
VCF_SUFFIXES = (".vcf.gz", ".vcf")
SKIPPED_SUFFIX = ".skipped.tsv"
_OUTPUT_SUFFIXES = (".h5", ".hdf5", ".tsv") + VCF_SUFFIXES
_META = ("chrom", "pos", "id", "ref", "alt", "record", "allele", "line", "kind")


def skipped_path(first_output: str) -> str:
    """``OUT.skipped.tsv`` for the first output ``OUT.h5`` (``OUT.vcf.gz``, ...)."""
    low = first_output.lower()
    for suffix in (SKIPPED_SUFFIX,) + _OUTPUT_SUFFIXES:
        if low.endswith(suffix):
            return first_output[:len(first_output) - len(suffix)] + SKIPPED_SUFFIX
    return first_output + SKIPPED_SUFFIX


def _variant_error(e, option=None):
    msg = " ".join(str(e).split())
    return OpError(f"{option}: {msg}" if option else msg)


class VariantSource:
    """The regions of a variant-effect run: the ALT alleles of a VCF, as windows from a FASTA.

    A :class:`~kipoi_tanger.adapter.dataloading.BatchSource` whose units are
    VCF records; a batch holds the windows of the ALTs of ``batch_size``
    consecutive records (blocks at multiples of ``batch_size`` from the first
    record, so a shard or a resumed run sees the batches a single run sees).
    A block whose alleles are all skipped is joined to the next one (so a run
    on a VCF whose alleles are all skipped stops before writing anything).

    Parameters
    ----------
    vcf, fasta : str
    length : int
        The window length L.
    strand : {'+', '-'}
    strict : bool
        The first skipped allele is one error line (checked before any batch is yielded).
    """

    unit = "record"
    fixed_batches = False

    def __init__(self, vcf: str, fasta: str, length: int, strand: str, strict: bool):
        from ..variants import VariantError
        from ..variants.vcf import count_records
        self.vcf, self.fasta, self.length, self.strand, self.strict = vcf, fasta, length, strand, strict
        try:
            self.units_total = count_records(vcf)
        except VariantError as e:
            raise _variant_error(e, "--vcf") from None
        if self.units_total == 0:
            raise OpError(f"--vcf: {vcf} has no variant records")
        self._check_fasta()

    def _check_fasta(self):
        from ..variants import VariantError
        from ..variants.windows import _Fasta
        if not os.path.isfile(self.fasta):
            raise OpError(f"--fasta: {self.fasta}: no such FASTA file")
        try:
            _Fasta(self.fasta).close()
        except VariantError as e:
            raise _variant_error(e, "--fasta") from None

    def no_random_access(self) -> Optional[str]:
        return None

    def shard_step(self, batch_size: int) -> int:
        return batch_size

    def items(self, batch) -> dict:
        return {VARIANTS: batch[VARIANTS]}

    def _windows(self, start, stop, strict):
        return windows(self.vcf, self.fasta, self.length, self.strand, start, stop, strict)

    def batches(self, batch_size: int, num_workers: int, start: int, stop: Optional[int]):
        """``(batch, records)`` for records ``start..stop``: ``batch`` is Kipoi-shaped
        (``inputs`` ``{'ref', 'alt'}``: one-hot ``(B, 4, L)`` int8 windows in ACGT order)
        and carries the :class:`~kipoi_tanger.variants.VariantBatch` under :data:`VARIANTS`."""
        from ..variants.windows import Skipped
        if self.strict:      # the first bad record is an error before anything is computed
            for _ in self._windows(start, stop, True):
                pass
        whole = start == 0 and (stop is None or stop >= self.units_total)
        wins, skipped, first_skip = [], [], None
        block_end = (start // batch_size + 1) * batch_size
        units_from = start
        scored = 0
        last = start - 1
        for item in self._windows(start, stop, False):
            rec = item.variant.record
            if rec >= block_end:
                if wins:
                    yield self._batch(wins, skipped), rec - units_from
                    scored += len(wins)
                    wins, skipped, units_from = [], [], rec
                block_end = (rec // batch_size + 1) * batch_size
            last = rec
            if isinstance(item, Skipped):
                skipped.append(item)
                first_skip = first_skip or item
            else:
                wins.append(item)
        end = stop if stop is not None else self.units_total
        end = max(end, last + 1)
        if not wins and not scored and whole:
            from ..variants.windows import REASONS
            why = f"; the first, line {first_skip.variant.line}: {REASONS[first_skip.reason]}: {first_skip.detail}" \
                if first_skip is not None else ""
            raise OpError(f"--vcf: none of the alleles of {self.vcf} could be scored{why}")
        if end > units_from:
            yield self._batch(wins, skipped), end - units_from

    def _batch(self, wins, skipped):
        import torch
        from ..variants.windows import VariantBatch, _batch
        if wins:
            vb = _batch(wins, skipped)
        else:       # rows shaped as in every other batch
            X = torch.zeros((0, 4, self.length), dtype=torch.int8)
            vb = VariantBatch([], X, X, [], list(skipped))
        return {"inputs": {"ref": vb.ref.numpy(), "alt": vb.alt.numpy()}, VARIANTS: vb}


def _alleles(vcf, start, stop):
    from ..variants import read_vcf
    for v in read_vcf(vcf, check=False):     # checked by count_records when the run started
        if v.record < start:
            continue
        if stop is not None and v.record >= stop:
            return
        yield v


def windows(vcf: str, fasta: str, length: int, strand: str, start: int = 0, stop: Optional[int] = None,
            strict: bool = False):
    """:func:`~kipoi_tanger.variants.variant_windows` of the ALT alleles of records ``start..stop``;
    a strict-mode error is one :class:`OpError` line naming the VCF line."""
    from ..variants import VariantError, variant_windows
    try:
        yield from variant_windows(_alleles(vcf, start, stop), fasta, length, strand, strict=strict, source=vcf)
    except VariantError as e:
        raise _variant_error(e) from None


def skipped_alleles(vcf: str, fasta: str, length: int, strand: str, start: int = 0, stop: Optional[int] = None):
    """The skipped ALT alleles (:class:`~kipoi_tanger.variants.Skipped`) of records ``start..stop``,
    derived again from the VCF and FASTA (windows are deterministic)."""
    from ..variants.windows import Skipped
    for item in windows(vcf, fasta, length, strand, start, stop):
        if isinstance(item, Skipped):
            yield item


class VariantEffect(Op):
    """kipoi-veff2 scores of every ALT allele of a VCF (see the module docstring)."""

    name = "variant-effect"
    help = "variant effect scores (kipoi-veff2's) of a VCF's variants on windows cut from a FASTA"
    params = (
        Param("vcf", None, "variants: a .vcf or .vcf.gz file (one row per ALT allele)", required=True,
              metavar="VCF", expect="a VCF file"),
        Param("fasta", None, "the reference genome the VCF refers to (indexed or indexable FASTA)", required=True,
              metavar="FASTA", expect="a FASTA file"),
        Param("scores", ["diff"], "scores to compute (kipoi-veff2's): diff, logit, logit_ref, logit_alt, "
              "deepsea_effect, ref, alt (default diff)", kind="list", metavar="SCORE"),
        Param("rc", False, "average each score over the windows and their reverse complements", kind="flag"),
        Param("strict", False, "stop at the first record that cannot be scored (one error line) instead of "
              "skipping it", kind="flag"),
        Param("strand", "+", "the strand the model reads: + (default) or - (windows reverse-complemented)",
              choices=STRANDS),
        Param("length", None, "window length, where the model's schema, tanger section and dataloader fix none",
              kind="int", minimum=1, expect="a positive window length", record=False),
        Param("output", None, "score only this model output (name or index; default: every output)", kind="any",
              metavar="NAME|INDEX", record=False),
        Param("reduce", False, "apply the model's declared reduction (postprocessing: tanger: reduce) to --output",
              kind="flag", record=False),
    )
    identity_only = ("input_files",)
    own_regions = "--vcf and --fasta"

    def __init__(self, inner=None, **values):
        super().__init__(inner, **values)
        self._outputs: List[str] = []
        self._scorer = None
        self._empty_flat = None

    # -- declarations ------------------------------------------------------------------------------

    @property
    def view(self) -> str:
        return "canonical"

    @property
    def writes_tables(self) -> bool:
        return True

    @property
    def extra_outputs(self):
        return {SKIPPED_SUFFIX: self._write_skipped, ".vcf.gz": self._write_vcf, ".vcf": self._write_vcf}

    def output_files(self, outputs: List[str]) -> List[str]:
        """The outputs plus ``OUT.skipped.tsv`` next to the first (unless it is among them)."""
        self._outputs = list(outputs)
        return super().output_files(outputs)

    @classmethod
    def companion_files(cls, outputs: List[str]) -> List[str]:
        """``OUT.skipped.tsv`` next to the first output, unless it is among the outputs."""
        from ..run.outputs import resolve_output
        extra = skipped_path(outputs[0])
        return [] if resolve_output(extra) in {resolve_output(o) for o in outputs} else [extra]

    @classmethod
    def output_joiners(cls):
        """The shards' skipped TSVs (header once) and VCFs (header once, records in order, bgzipped
        by htslib for ``.gz`` as the run's writer does) joined into a single run's."""
        from ..run.merge import join_tsv
        from ..variants.writer import join_vcfs
        return {SKIPPED_SUFFIX: join_tsv, ".vcf.gz": join_vcfs, ".vcf": join_vcfs}

    def check(self, target) -> None:
        from ..adapter.layout import DNA
        from ..variants import check_score_names
        super().check(target)
        v = self.values
        for key, option in (("vcf", "--vcf"), ("fasta", "--fasta")):
            if not isinstance(v[key], str) or not v[key]:
                raise OpError(f"{option}: give the {'VCF' if key == 'vcf' else 'FASTA'} file")
            if not os.path.isfile(v[key]):
                raise OpError(f"{option}: {v[key]}: no such file")
        try:
            v["scores"] = check_score_names(v["scores"])
        except ValueError as e:
            raise OpError(f"--{e}") from None
        spec = target.spec
        if sorted(spec.alphabet) != sorted(DNA):
            raise OpError(f"model {target.name}: variant-effect cuts DNA windows, but the model's alphabet is "
                          f"{''.join(spec.alphabet)}")
        others = [n for k, n in zip(spec.input_keys, spec.input_names) if k != spec.sequence_input]
        if others:
            raise OpError(f"model {target.name}: variant-effect feeds the model DNA windows only, but it also "
                          f"takes {', '.join(map(str, others))}")
        L = spec.sequence_length
        if v["length"] is not None and L is not None and v["length"] != L:
            raise OpError(f"--length: {v['length']}, but the model's input length is {L}")
        L = v["length"] if v["length"] is not None else L
        if L is None:
            raise OpError(f"--length: the input length of model {target.name} is not fixed by its schema, tanger "
                          "section or dataloader; give the window length with --length")
        self.resolved["length"] = int(L)
        self.selection = OutputSelection(target, v["output"], v["reduce"])
        if any(o.lower().endswith(VCF_SUFFIXES) for o in self._outputs):
            self._check_vcf_shapes(target)
            self._check_info_clash(target)

    def _check_info_clash(self, target):
        """The input VCF must not declare an INFO field the VCF output adds (it would fail after all the
        work): exact IDs where the schema gives the outputs' sizes, else any ID they could take."""
        from ..variants import VariantError, info_id
        from ..variants.vcf import _open
        try:
            vcf = _open(self.values["vcf"])
        except VariantError as e:
            raise _variant_error(e, "--vcf") from None
        try:
            existing = [h["ID"] for h in vcf.header_iter() if h["HeaderType"] == "INFO"]
        finally:
            vcf.close()
        sel = self.selection
        keys = [sel.key] if sel.single else list(target.spec.target_keys) or [None]
        for o, label in enumerate(sel.labels):
            shape = None
            if sel.reduce is None and target.spec.target_keys and o < len(keys):
                shape = target.output_shape(keys[o])
            size = int(np.prod(shape)) if shape is not None else None
            cols = _column_labels(target, sel, o, size) if size else []
            for s in self.values["scores"]:
                base = info_id(s, label)
                if size is None:
                    hit = [e for e in existing if e == base or e.startswith(base + "_")]
                else:
                    ids = {base} if size == 1 else {info_id(s, f"{label}_{c}") for c in cols}
                    hit = [e for e in existing if e in ids]
                if hit:
                    raise OpError(f"--vcf: {self.values['vcf']} already declares INFO field {hit[0]}, which the VCF "
                                  "output adds (a VCF written by an earlier run?); drop it from the input first "
                                  f"(bcftools annotate -x INFO/{hit[0]}) or write no .vcf output")

    def _check_vcf_shapes(self, target, shapes=None):
        """A VCF holds one value per score and output element: outputs with several axes need a reduction."""
        sel = self.selection
        if shapes is None:
            if sel.single and sel.reduce is not None:
                return          # the reduced rank is checked on the first batch
            keys = [sel.key] if sel.single else list(target.spec.target_keys) or [None]
            shapes = [target.output_shape(k) if target.spec.target_keys else None for k in keys]
        for label, shape in zip(sel.labels, shapes):
            if shape is not None and len(shape) > 1:
                from ..adapter.layout import format_shape
                raise OpError(f"-o/--output: a VCF holds one value per score and output element, but output "
                              f"{label!r} has shape {format_shape(shape)} per variant; pick a scalar or 1-D output "
                              "with --output, or --reduce it (postprocessing: tanger: reduce)")

    def record(self, into: dict) -> None:
        super().record(into)
        into["length"] = self.resolved["length"]
        into.update(self.selection.record())
        into["input_files"] = {k: _stat(self.values[k]) for k in ("vcf", "fasta")}

    def result_names(self) -> Optional[list]:
        return self.selection.names

    # -- running -----------------------------------------------------------------------------------

    def batch_source(self, target, dataloader_args):
        v = self.values
        return VariantSource(v["vcf"], v["fasta"], self.resolved["length"], v["strand"], v["strict"])

    def _make_scorer(self, vb):
        import torch
        from ..variants import VariantScorer
        ctx = self._ctx
        # built here rather than with RunContext.wrap: its progress hook would keep the
        # fast ISM engine from tracing the model
        w = ctx.target.wrap(canonical=True, arg_keys=(), x_dtype=torch.float32)
        func = self.selection.func(w, vb.ref[:1])
        kw = {k: v for k, v in ctx.common().items() if k in ("batch_size", "device", "dtype")}
        self._scorer = VariantScorer(w, scores=self.values["scores"], rc=self.values["rc"], func=func,
                                     output_names=self.selection.labels, **kw)

    def compute(self, items) -> Dict[str, np.ndarray]:
        vb = items[VARIANTS]
        if not vb.variants:
            return self._empty()
        if self._scorer is None:
            self._make_scorer(vb)
        flat = self._flat(self._scorer(vb), vb)
        if self._empty_flat is None:
            self._empty_flat = {k: v[:0] for k, v in flat.items()}
        return flat

    def _empty(self):
        """The results of a batch without windows: every dataset with 0 rows (keys and row shapes
        from the first scored batch, or from a forward pass on one all-A window)."""
        if self._empty_flat is None:
            from ..variants.vcf import Variant
            from ..variants.windows import VariantBatch, Window, one_hot_codes
            L = self.resolved["length"]
            codes = np.zeros((1, L), dtype=np.uint8)
            X = one_hot_codes(codes)
            v = Variant("", 0, "", "A", "A", 0, 0, 0)
            w = Window(v, "deletion", (0, L), 0, codes[0], codes[0])   # a kind scored on full forwards
            vb = VariantBatch([v], X, X, [w], [])
            self._empty_flat = {k: a[:0] for k, a in self.compute({VARIANTS: vb}).items()}
        return dict(self._empty_flat)

    def _flat(self, scored, vb) -> Dict[str, np.ndarray]:
        names = self.result_names()
        single = len(scored.ref) == 1
        pick = (lambda ys: ys[0]) if single else (lambda ys: list(ys))
        out = {}
        if self._outputs and any(o.lower().endswith(VCF_SUFFIXES) for o in self._outputs) and \
                self._empty_flat is None:
            self._check_vcf_shapes(None, [tuple(r.shape[1:]) for r in scored.ref])
        out.update(name_outputs("ref", pick(scored.ref), names))
        out.update(name_outputs("alt", pick(scored.alt), names))
        for s in self.values["scores"]:
            if s in ("ref", "alt"):
                continue
            out.update(name_outputs(s, pick([sc[s] for sc in scored.scores]), names))
        out = {k: to_numpy(v) for k, v in out.items()}
        out.update(_metadata(vb, self.values["strand"], self.resolved["length"]))
        return out

    # -- writers -----------------------------------------------------------------------------------

    def _block(self, attrs):
        rng = attrs.get("shard_range")
        return (int(rng[0]), int(rng[1])) if rng else (0, None)

    def _write_skipped(self, path, batches, attrs):
        from ..variants import write_skipped_tsv
        v = self.values
        start, stop = self._block(attrs)
        n = write_skipped_tsv(skipped_alleles(v["vcf"], v["fasta"], self.resolved["length"], v["strand"], start,
                                              stop), path)
        if n:
            log.warning("variant-effect: %d ALT allele(s) skipped, listed with the reason in %s", n,
                        skipped_path(self._outputs[0]) if self._outputs else path)

    def vcf_fields(self, first: Optional[dict]):
        """``[(INFO id, description, dataset, element index)]``: one per score, output and element."""
        from ..variants import info_id
        sel, target = self.selection, self._ctx.target
        names = self.result_names()
        labels = sel.labels
        n_out = len(labels)
        fields = []
        for s in self.values["scores"]:
            for o, label in enumerate(labels):
                key = s if n_out == 1 else f"{s}/{names[o] if names else o}"
                if first is None or key not in first:
                    continue
                shape = first[key].shape[1:]
                size = int(np.prod(shape)) if shape else 1
                cols = _column_labels(target, sel, o, size)
                for j in range(size):
                    suffix = f"{label}_{cols[j]}" if size > 1 else label
                    desc = (f"kipoi-tanger variant-effect: {s} of model output {label}"
                            + (f", element {cols[j]}" if size > 1 else "") + f" (model {target.name})")
                    fields.append((info_id(s, suffix), desc, key, j))
        return fields

    def _write_vcf(self, path, batches, attrs):
        import itertools
        from ..variants import VCFWriter
        from ..variants.vcf import Variant
        it = iter(batches)
        first = next(it, None)
        fields = self.vcf_fields(first)
        ids = [f[0] for f in fields]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise OpError(f"-o/--output: two scores of different outputs share the VCF INFO id {dup}")
        start, stop = self._block(attrs)
        with VCFWriter(self.values["vcf"], path, [(f[0], f[1]) for f in fields], records=(start, stop)) as w:
            for flat in (itertools.chain([first], it) if first is not None else ()):
                rec, allele = flat["metadata/variants/record"], flat["metadata/variants/allele"]
                table = np.stack([flat[key].reshape(len(rec), -1)[:, j] for _, _, key, j in fields], axis=1) \
                    if fields else np.zeros((len(rec), 0))
                for i, row in enumerate(table.tolist()):
                    v = Variant("", 0, "", "", "", int(rec[i]), int(allele[i]), 0)
                    w.write(v, dict(zip(ids, row)))


def _column_labels(target, sel, o, size) -> List[str]:
    """Labels of output ``o``'s elements: the schema's column_labels when they fit, else 0..size-1."""
    from ..adapter.section import schema_entries
    try:
        call, keys, names, schemas = schema_entries(getattr(target.kmodel.schema, "targets", None))
        key = sel.key if sel.single else (keys[o] if o < len(keys) else None)
        i = keys.index(key) if key in keys else (0 if len(keys) == 1 else None)
        labels = list(getattr(schemas[i], "column_labels", None) or []) if i is not None else []
    except Exception:
        labels = []
    if sel.reduce is not None or len(labels) != size:
        return [str(j) for j in range(size)]
    return [str(c) for c in labels]


def _stat(path):
    try:
        st = os.stat(path)
        return [os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
        return [path, None, None]


def _metadata(vb, strand, L) -> Dict[str, np.ndarray]:
    vs, ws = vb.variants, vb.windows
    out = {
        "metadata/variants/chrom": np.array([v.chrom for v in vs], dtype=str),
        "metadata/variants/pos": np.array([v.pos for v in vs], dtype=np.int64),
        "metadata/variants/id": np.array([v.id for v in vs], dtype=str),
        "metadata/variants/ref": np.array([v.ref for v in vs], dtype=str),
        "metadata/variants/alt": np.array([v.alt for v in vs], dtype=str),
        "metadata/variants/record": np.array([v.record for v in vs], dtype=np.int64),
        "metadata/variants/allele": np.array([v.allele for v in vs], dtype=np.int64),
        "metadata/variants/line": np.array([v.line for v in vs], dtype=np.int64),
        "metadata/variants/kind": np.array([w.kind for w in ws], dtype=str),
    }
    starts = np.array([w.span[0] if strand == "+" else w.span[1] - L for w in ws], dtype=np.int64)
    out.update({
        "metadata/ranges/chr": out["metadata/variants/chrom"],
        "metadata/ranges/start": starts,
        "metadata/ranges/end": starts + L,
        "metadata/ranges/strand": np.array([strand] * len(vs), dtype=str),
        "metadata/ranges/id": out["metadata/variants/id"],
    })
    return out
