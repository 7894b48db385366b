"""sharpmld's performance suite: ``python -m bench [--quick] [--only GROUP] [--out FILE]``.

Each module measures one of the issue's targets beside its baseline in the same run:
``geometry_bench`` (unprojection vs the float64 SVD of ``baseline_geometry``),
``formats_bench`` (.splat / .ply writers vs ``baseline_formats``), ``pipeline_bench`` (the
worker pipeline with ``sleepy_model``), ``worker_bench`` (loading ``large_model``),
``daemon_bench`` and ``cli_bench``. Results: ``bench/results.json``, summarised in
``bench/RESULTS.md``.
"""
