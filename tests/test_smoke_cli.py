def test_reference_of_exercise_1_passes_every_check(dldiy_once):
    result = dldiy_once("check", "exercise-1", "reference/exercise-1", "--json")  # test_exercise_1 reads it too
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses.pop("parity") in ("pass", "skip")
    assert set(statuses.values()) == {"pass"}
