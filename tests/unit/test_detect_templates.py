"""What counts as a new wording: `templates.wording` and how known wordings are kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watchdog.detect import DetectConfig, Detector
from watchdog.detect.state import load_detector, save_detector
from watchdog.detect.templates import template_hash, wording
from watchdog.rules.normalise import reason_template
from watchdog.store import StateStore


@pytest.mark.parametrize(("text", "names", "expected"), [
    # labels of the systems in between, nested, and trailing marks
    ("失败原因：联通审核不通过：该证件存在不良记录~", (), "该证件存在不良记录"),
    ("【移动】Age restriction not met", (), "age restriction not met"),
    ("[cBSS] 号码预占失败，号池无可用号码。。", (), "号码预占失败,号池无可用号码"),
    # the event's own product, province and carrier (also by its short name)
    ("年龄超出联通王卡19元办理范围！！", ("中国联通", "联通王卡19元"), "年龄超出<name>办理范围"),
    ("新规：单证件移动限办2张", ("中国移动", "河南"), "单证件<name>限办#张"),
    ("河南地区暂不受理", ("中国移动", "河南"), "<name>地区暂不受理"),
    # not a label: punctuation before the colon, or more than 8 characters
    ("证件号码格式不正确(证件号码:undefined)", (), "证件号码格式不正确(证件号码:undefined)"),
    ("移动风控新策略拦截了本单:非常住地办理", (), "移动风控新策略拦截了本单:非常住地办理"),
    # a one-letter folded name (`D#`) is never replaced; nothing left keeps the template
    ("D27850 刷单", ("D27850",), "d# 刷单"),
    ("！！！", (), "!"),
    ("失败原因：", (), "失败原因"),
])
def test_wording(text: str, names: tuple[str, ...], expected: str) -> None:
    assert wording(reason_template(text), names) == expected


def test_state_keyed_otherwise_is_relearned(tmp_path) -> None:
    """Known wordings saved under another key (an older release keyed whole templates)
    are dropped, and learning starts over, so an upgrade raises no flood of 'new'."""
    d = Detector(DetectConfig(), ["carrier"])
    d.templates.known[template_hash("old")] = 10
    d.templates.learn_from = 1
    store = StateStore.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        save_detector(store.engine, d, full=True)
        same = Detector(DetectConfig(), ["carrier"])
        load_detector(store.engine, same)
        assert same.templates.known == d.templates.known
        assert same.templates.learn_from == 1

        with store.engine.begin() as conn:  # as a release before TEMPLATE_KEY left it
            conn.exec_driver_sql("DELETE FROM watchdog_detect_meta WHERE key='templates_key'")
        old = Detector(DetectConfig(), ["carrier"])
        load_detector(store.engine, old)
        assert old.templates.known == {} and old.templates.learn_from is None
        now = datetime(2024, 4, 25, tzinfo=UTC)
        old.step(now)
        save_detector(store.engine, old)
        again = Detector(DetectConfig(), ["carrier"])
        load_detector(store.engine, again)
        assert again.templates.known == {}, "the old keys were purged"
    finally:
        store.close()
