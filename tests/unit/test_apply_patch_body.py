"""The body of a server-side apply: the API server reads it as YAML, so the
JSON sent must also be a YAML document that means the same. PyYAML enforces
the same printable-character rule as the API server's reader."""
import json

import pytest
import yaml

from modeldeploy.kube.writing import apply_patch_body


@pytest.mark.parametrize("version", [
    "🚀",                          # outside the BMP: json.dumps would send a surrogate pair
    "\U000f381f\x99}R\x1e\x90",    # found by the fuzz test (FUZZ_SEED=3311953234): C1 and C0 controls
    "tab\there, DEL\x7f, NEL\x85, LS\u2028, PS\u2029",  # not printable, or line breaks, in YAML
    "\ufffe\uffff",                # the two BMP non-characters
    "версия-7 é 中文",
])
def test_an_apply_body_is_json_and_yaml_that_read_back_the_same(version):
    body = {"metadata": {"annotations": {"modeldeploy.io/model-version": version}},
            "spec": {"template": {"spec": {"containers": [{"env": [{"name": "V", "value": version}]}]}}}}
    sent = apply_patch_body(body)
    assert json.loads(sent) == body
    assert yaml.safe_load(sent.decode("utf-8")) == body


def test_printable_text_goes_as_utf_8_not_escapes():
    assert apply_patch_body({"v": "é🚀"}) == '{"v": "é🚀"}'.encode("utf-8")
