"""Variants without Kipoi: VCF reading, variant-centred windows, kipoi-veff2
scores, scoring batches with a PyTorch model, and VCF writing.

A streamed pipeline, with memory bounded by the batch size::

    from kipoi_tanger.variants import read_vcf, variant_windows, batches, VariantScorer
    scorer = VariantScorer(model, scores=['diff', 'logit'])
    for batch in batches(variant_windows(read_vcf('in.vcf.gz'), 'genome.fa', 1000), 64):
        scored = scorer(batch)          # scored.ref/alt/scores, scored.skipped
"""
from .scores import SCORES, check_score_names, compute_scores
from .scoring import ScoredBatch, VariantScorer
from .vcf import Variant, VariantError, read_vcf
from .windows import (REASONS, SKIPPED_COLUMNS, Skipped, VariantBatch, Window, batches,
                      variant_windows, window_span, write_skipped_tsv)
from .writer import VCFWriter, info_id

__all__ = ['Variant', 'VariantError', 'read_vcf', 'Window', 'Skipped', 'VariantBatch', 'REASONS',
           'SKIPPED_COLUMNS', 'window_span', 'variant_windows', 'batches', 'write_skipped_tsv',
           'SCORES', 'compute_scores', 'check_score_names', 'VariantScorer', 'ScoredBatch',
           'VCFWriter', 'info_id']
