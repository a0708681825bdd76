"""variants.scores (kipoi-veff2's definitions, rc averaging, unbounded inputs) and
variants.writer (VCF in → VCF out read back by cyvcf2, and by bcftools when
installed)."""
import shutil
import subprocess

import numpy
import pytest
import torch
from cyvcf2 import VCF

from kipoi_tanger.variants import (SCORES, VCFWriter, Window, compute_scores, info_id, read_vcf,
                                   variant_windows)

from test_variants_windows import RECORDS, write_inputs


def logit(p):
    return numpy.log(p / (1 - p))


def test_scores_follow_kipoi_veff2_definitions():
    ref = numpy.array([[0.2, 0.9], [0.5, 0.01]])
    alt = numpy.array([[0.4, 0.8], [0.5, 0.3]])
    out = compute_scores(torch.tensor(ref, dtype=torch.float32), alt, list(SCORES))
    r32 = torch.tensor(ref, dtype=torch.float32).double().numpy()
    assert numpy.allclose(out['diff'], alt - r32)
    assert numpy.allclose(out['logit'], logit(alt) - logit(r32))
    assert numpy.allclose(out['logit_ref'], logit(r32)) and numpy.allclose(out['logit_alt'], logit(alt))
    assert numpy.allclose(out['deepsea_effect'], numpy.abs(logit(alt) - logit(r32)) * numpy.abs(alt - r32))
    assert numpy.array_equal(out['alt'], alt) and out['diff'].dtype == numpy.float64
    assert out['deepsea_effect'][1, 0] == 0


def test_rc_averaging_is_after_scoring():
    ref, alt = numpy.array([0.2, 0.6]), numpy.array([0.7, 0.5])
    rref, ralt = numpy.array([0.3, 0.5]), numpy.array([0.6, 0.55])
    out = compute_scores(ref, alt, ['logit', 'diff'], ref_rc=rref, alt_rc=ralt)
    assert numpy.allclose(out['logit'], ((logit(alt) - logit(ref)) + (logit(ralt) - logit(rref))) / 2)
    assert numpy.allclose(out['diff'], ((alt - ref) + (ralt - rref)) / 2)
    with pytest.raises(ValueError, match='both or neither'):
        compute_scores(ref, alt, ['diff'], ref_rc=rref)


def test_unbounded_predictions_and_bad_names():
    ref, alt = numpy.array([0.2, 1.5]), numpy.array([0.3, 0.4])
    assert numpy.allclose(compute_scores(ref, alt, ['diff'])['diff'], alt - ref)   # fine for diff
    with pytest.raises(ValueError, match=r"output 'counts': ref predictions outside \[0, 1\]"):
        compute_scores(ref, alt, ['diff', 'logit'], output='counts')
    with pytest.warns(RuntimeWarning, match='outside'):
        out = compute_scores(ref, alt, ['logit_ref'], unbounded='warn')
    assert numpy.isnan(out['logit_ref'][1])
    with pytest.raises(ValueError, match="unknown score 'logodds'"):
        compute_scores(ref, alt, ['logodds'])
    with pytest.raises(ValueError, match='twice'):
        compute_scores(ref, alt, ['diff', 'diff'])


def test_info_ids_are_vcf_safe():
    assert info_id('diff', 'task/0') == 'KT_diff_task_0'
    assert info_id('logit', '') == 'KT_logit'
    assert info_id('diff', 'a b', prefix='9') == '_9diff_a_b'


@pytest.mark.parametrize('out_name', ['out.vcf', 'out.vcf.gz'])
def test_vcf_round_trip(tmp_path, out_name):
    vcf, fa = write_inputs(tmp_path)
    fields = [(info_id(sc, o), f"{sc} of output {o}") for sc in ('diff', 'logit') for o in ('t0', 't1')]
    out = str(tmp_path / out_name)
    expected = {}
    with VCFWriter(vcf, out, fields) as w:
        for k, item in enumerate(variant_windows(read_vcf(vcf), fa, 9)):
            if not isinstance(item, Window):
                continue
            vals = {f: (k + 1) * 0.5 + j for j, (f, _) in enumerate(fields)}
            w.write(item.variant, vals)
            expected[(item.variant.record, item.variant.allele)] = vals
    recs = list(VCF(out))
    assert len(recs) == len(RECORDS)
    reader = VCF(out)   # keep it alive: header records point into it
    hdr = {h['ID']: dict(h.info()) for h in reader.header_iter() if h['HeaderType'] == 'INFO'}
    assert hdr['KT_diff_t0']['Number'] == 'A' and hdr['KT_diff_t0']['Type'] == 'Float'
    assert 'DP' in hdr
    for i, rec in enumerate(recs):
        (c, p, vid, ref, alt) = RECORDS[i]
        assert (rec.CHROM, rec.POS, rec.ID, rec.REF, ','.join(rec.ALT)) == (c, p, vid, ref, alt)
        assert rec.INFO.get('DP') == i                      # the input's own INFO is kept
        for f, _ in fields:
            got = rec.INFO.get(f)
            want = [expected.get((i, j), {}).get(f) for j in range(len(rec.ALT))]
            if all(x is None for x in want):
                assert got is None                          # skipped records are copied untouched
            else:
                got = got if isinstance(got, tuple) else (got,)
                assert numpy.allclose([numpy.nan if g is None else g for g in got],
                                      [numpy.nan if x is None else x for x in want],
                                      rtol=1e-5, equal_nan=True)
    if shutil.which('bcftools'):
        res = subprocess.run(['bcftools', 'view', '-H', out], capture_output=True, text=True)
        assert res.returncode == 0 and len(res.stdout.splitlines()) == len(RECORDS)


def test_writer_refuses_out_of_order_and_undeclared(tmp_path):
    vcf, fa = write_inputs(tmp_path)
    vs = list(read_vcf(vcf))
    w = VCFWriter(vcf, str(tmp_path / 'o.vcf'), [('KT_diff', 'd')])
    w.write(vs[3], {'KT_diff': 1.0})
    with pytest.raises(ValueError, match='file order'):
        w.write(vs[0], {'KT_diff': 1.0})
    with pytest.raises(ValueError, match='not declared'):
        w.write(vs[4], {'KT_other': 1.0})
    w.close()
    with pytest.raises(ValueError, match='already exists'):
        VCFWriter(vcf, str(tmp_path / 'o2.vcf'), [('DP', 'clash')])


def test_writer_leaves_no_complete_looking_file_on_error(tmp_path):
    vcf, _ = write_inputs(tmp_path)
    out = tmp_path / 'o.vcf'
    with pytest.raises(RuntimeError):
        with VCFWriter(vcf, str(out), [('KT_diff', 'd')]) as w:
            w.write(next(read_vcf(vcf)), {'KT_diff': 1.0})
            raise RuntimeError('model failed')
    assert len([ln for ln in out.read_text().splitlines() if not ln.startswith('#')]) < len(RECORDS)
