from support.logs import denials


def test_a_log_line_stamped_at_millisecond_403_is_no_denial():
    # It failed a clean-clone CI run: "07:34:34,403 INFO ... succeeded." was read as a 403.
    assert denials("2026-12-07 07:34:34,403 INFO    kopf.activities.authentication: Activity 'login' succeeded.") == []
    line = "2026-12-07 07:34:35,101 ERROR   kopf: (403) Forbidden: pods is forbidden"
    assert denials(f"ok\n{line}\n") == [line]
    assert denials("deployments.apps is forbidden: User cannot list") != []
