"""Specs: what the user asked for, frozen and serialisable (runs, evaluations, presets,
auxiliary runs, named experiments). A spec is resolved once and then only read."""
