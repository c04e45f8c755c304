"""dmo-ladder-table on runs it does not list: a clear message, not a traceback."""

from __future__ import annotations

import json

from dmo_ros.ladder.table import main


def test_a_push_cube_run_is_refused_with_a_pointer_to_dmo_compare(tmp_path, capsys):
    run = tmp_path / "act"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "policy", "method": "act", "task": "push_cube"}))
    (run / "final_eval.json").write_text(json.dumps({"task": "push_cube", "config": {"episodes": 2, "seed": 1},
                                                     "samples": 0, "wall_s": 1.0, "policy": {}, "ceilings": {}}))
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert "Push Cube run" in err and "dmo-compare" in err and "Traceback" not in err
