"""Helpers for comparing a kipoi_tanger module with its tangermeme 1.6.0
oracle: public names, signatures, and the type of the exception raised."""
import inspect
import re


def public_names(module):
    """Names a module defines itself (not imports), without a leading underscore."""
    return {n for n, v in vars(module).items()
            if not n.startswith('_') and getattr(v, '__module__', None) == module.__name__}


def _default(p):
    d = p.default
    if d is inspect.Parameter.empty:
        return '<required>'
    return getattr(d, '__name__', None) if callable(d) else repr(d)


def assert_same_api(tm_module, kt_module, omitted=(), signature_differences=()):
    """Every public name of ``tm_module`` exists in ``kt_module`` (except the
    ``omitted`` ones, each a deliberate difference), and every function has
    the same parameters, in the same order, with the same defaults (functions
    as defaults compared by name), except the names in
    ``signature_differences``."""
    expected = public_names(tm_module) - set(omitted)
    missing = sorted(n for n in expected if not hasattr(kt_module, n))
    assert not missing, f"{kt_module.__name__} lacks {missing}"
    for name in set(omitted):
        assert name in public_names(tm_module), f"{name} is no longer in {tm_module.__name__}"
    for name in sorted(expected - set(signature_differences)):
        theirs, ours = getattr(tm_module, name), getattr(kt_module, name)
        if inspect.isclass(theirs):
            assert getattr(ours, '_fields', None) == getattr(theirs, '_fields', None), name
            continue
        a = [(p.name, p.kind, _default(p)) for p in inspect.signature(theirs).parameters.values()]
        b = [(p.name, p.kind, _default(p)) for p in inspect.signature(ours).parameters.values()]
        assert a == b, f"{name}: tangermeme {a}\n kipoi_tanger {b}"


def raised(f):
    try:
        f()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return e
    return None


def assert_raises_like(theirs, ours, match=None):
    """Both raise; ours is an instance of tangermeme's exception type (and a
    ValueError, kipoi_tanger's contract for bad input); ``match`` in our message."""
    e_tm, e_kt = raised(theirs), raised(ours)
    assert e_tm is not None, "tangermeme did not raise"
    assert e_kt is not None, "kipoi_tanger did not raise"
    assert isinstance(e_kt, type(e_tm)), (type(e_tm), type(e_kt), str(e_kt))
    assert isinstance(e_kt, ValueError), type(e_kt)
    if match is not None:
        assert re.search(match, str(e_kt)), str(e_kt)

