#!/usr/bin/env python3
"""A cadre's day in a real browser (Debian's chromium driven by Playwright).

Starts as a county does: a `minqing-relay` on 127.0.0.1 with the village, the
laptop enrolled by the operator and its enrolment file written out, and a
second laptop enrolled for the same village. `minqing app --no-browser` starts
on an empty home and shows 设置 first: the cadre uploads the file and sets the
passphrase (a mismatch is refused first, nothing written), and 同步 shows the
first sync. The day's records are then added with the CLI (through the
running app: households, key-group residents, a visit, an overdue demand), and
the pages are walked as a cadre would, finding every element by its label or
role: 今日, 村/户/人, search by pinyin initials, a resident's page, 记民情日记
(once with the mouse, once with the keyboard only), a demand opened and taken
through 转办 → 督办 → 反馈 → 回访 → 销号, the demand list, a leave settled by a
补访, 报表 (its monthly .xlsx downloaded and read back), the printable diary,
and a register import (preview with rejected rows, then confirm). Before the
walk, requests without the secret, with a foreign Origin or a wrong Host, and
form posts without the CSRF token are checked to be refused. After each write the
figures on the pages are compared with `minqing … --json` for the same home
(the CLI goes through the running service). Every request the browser makes is
recorded; the test fails if one leaves 127.0.0.1. At the end of the day the
relay is stopped: the app keeps working (a visit is logged), 同步 shows 离线
and the change not yet at the county, equal to `minqing status --json`; the
relay is started again and, with no click, the visit reaches it (the second
laptop syncs and holds it) and 同步 shows it at the county. 设置 then shows
the device, the relay and the data location (equal to `whoami --json`), and
a second empty laptop given the same (used) enrolment file is refused in
Chinese, nothing written. With --shots DIR, a screenshot of each page is
written there (docs/app/ holds the committed ones).

Usage: python3 tests/browser/cadre_day.py --minqing target/debug/minqing \
         --relay target/debug/minqing-relay [--shots docs/app]
Needs: PyPI playwright and openpyxl, /usr/bin/chromium, fonts-noto-cjk (.ci/run installs them).
"""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import openpyxl
from playwright.sync_api import Error as PlaywrightError, expect, sync_playwright

CHINA = datetime.timezone(datetime.timedelta(hours=8))
PASSPHRASE = "browser-test-passphrase"


def pass_file(root):
    """The test's passphrase in a private file (the CLI and the relay read it)."""
    path = os.path.join(root, "pass")
    with open(path, "w", encoding="utf-8") as f:
        f.write(PASSPHRASE + "\n")
    os.chmod(path, 0o600)
    return path


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(what, check, timeout=60):
    """Waits (up to `timeout` s) for `check()` to be true; fails naming `what`."""
    deadline = time.time() + timeout
    while True:
        if check():
            return
        if time.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.5)


class Relay:
    """A `minqing-relay` home on 127.0.0.1, run as the county's operator runs it."""

    def __init__(self, binary, root):
        self.binary = binary
        self.home = os.path.join(root, "relay")
        self.addr = f"127.0.0.1:{free_udp_port()}"
        self.env = dict(os.environ, MINQING_RELAY_HOME=self.home,
                        MINQING_RELAY_PASSPHRASE_FILE=pass_file(root))
        self.env.pop("MINQING_LOG", None)
        self.proc = None
        self.log = []
        self.run("init", "--name", "县中继", "--listen", self.addr)

    def run(self, *argv):
        out = subprocess.run([self.binary, *argv], env=self.env, capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"minqing-relay {' '.join(argv)} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def enroll(self, cadre, villages, out):
        """`enroll … --out FILE`: the file the operator hands the cadre; the device id."""
        return self.run("enroll", "--cadre", cadre, "--team", "城关服务队", "--villages", villages,
                        "--out", out).strip().splitlines()[-1]

    def start(self):
        self.proc = subprocess.Popen([self.binary, "serve"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        listening = threading.Event()

        def drain(stream):
            for line in stream:
                self.log.append(line)
                if "listening on" in line:
                    listening.set()

        threading.Thread(target=drain, args=(self.proc.stderr,), daemon=True).start()
        if not listening.wait(30):
            self.proc.kill()
            raise AssertionError("minqing-relay serve did not listen within 30 s:\n" + "".join(self.log))

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.proc = None
        assert code == 0, f"minqing-relay serve exited {code} on SIGTERM"

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Home:
    """A laptop home driven through the minqing CLI."""

    def __init__(self, minqing, root, name="home"):
        self.minqing = minqing
        self.path = os.path.join(root, name)
        self.pass_file = pass_file(root)
        self.env = dict(os.environ, MINQING_HOME=self.path, MINQING_PASSPHRASE_FILE=self.pass_file)
        self.env.pop("MINQING_LOG", None)

    def run(self, *argv):
        out = subprocess.run(
            [self.minqing, *argv], env=self.env, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise AssertionError(f"minqing {' '.join(argv)} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def new_id(self, *argv):
        return self.run(*argv).strip().splitlines()[-1]

    def json(self, *argv):
        return json.loads(self.run(*argv, "--json"))


def prepare(home, today):
    """The village from the relay as a cadre's laptop holds it at the start of
    the day (written with the CLI, through the running app)."""
    ids = {}
    h1 = home.new_id("household", "add", "--village", "V001", "--address", "小河村三组12号", "--number", "0312")
    h2 = home.new_id("household", "add", "--village", "V001", "--address", "小河村一组3号", "--number", "0103")
    h3 = home.new_id("household", "add", "--village", "V001", "--address", "小河村二组5号", "--number", "0205")
    ids["李秀英"] = home.new_id(
        "resident", "add", "--household", h1, "--name", "李秀英", "--id-card", "370811195803151224",
        "--phone", "13905371234", "--relation", "户主", "--tag", "独居老人", "--tag", "老党员")
    ids["王建国"] = home.new_id(
        "resident", "add", "--household", h2, "--name", "王建国", "--relation", "户主", "--tag", "退役军人")
    ids["赵小红"] = home.new_id("resident", "add", "--household", h2, "--name", "赵小红", "--relation", "妻子")
    ids["刘晓宇"] = home.new_id(
        "resident", "add", "--household", h3, "--name", "刘晓宇", "--relation", "孙子", "--tag", "留守儿童")
    home.run("visit", "log", "--household", h2, "--resident", ids["赵小红"], "--kind", "普遍走访",
             "--note", "了解家庭收入情况，无特殊困难。")
    old = home.new_id("demand", "open", "--resident", ids["王建国"], "--category", "道路",
                      "--text", "门前道路坑洼，雨天积水")
    due = (today - datetime.timedelta(days=5)).isoformat()
    home.run("demand", "transfer", old, "--to", "县交通运输局", "--due", due)
    ids["households"] = [h1, h2, h3]
    return ids


def fetch(port, method, path, headers, body=None):
    """One request to the service, outside the browser: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def check_fences(home, port, secret):
    """A request without the secret, with a foreign Origin, with a wrong Host,
    or a form post without the CSRF token is refused, and writes nothing; the
    same request with everything right is answered."""
    own = f"127.0.0.1:{port}"
    cookie = f"minqing_{port}={secret}"
    status, body = fetch(port, "GET", "/", {"Host": own, "Cookie": cookie})
    assert status == 200 and "今日" in body, ("the control request", status)
    refusals = [
        ("no secret", "GET", {"Host": own}, 403),
        ("a wrong secret", "GET", {"Host": own, "Cookie": f"minqing_{port}={'0' * 64}"}, 403),
        ("a foreign Origin", "GET", {"Host": own, "Cookie": cookie, "Origin": "http://evil.example"}, 403),
        ("Origin: null", "GET", {"Host": own, "Cookie": cookie, "Origin": "null"}, 403),
        ("a wrong Host (DNS rebinding)", "GET", {"Host": f"evil.example:{port}", "Cookie": cookie}, 421),
    ]
    for why, method, headers, want in refusals:
        status, _ = fetch(port, method, "/", headers)
        assert status == want, f"a request with {why} got {status}, not {want}"
    before = len(home.json("visit", "list"))
    household = home.json("household", "list")[0]["id"]
    form = urllib.parse.urlencode(
        {"household": household, "kind": "普遍走访", "note": "不该保存的记录"})
    posts = [
        ("no CSRF token", {"Host": own, "Cookie": cookie}, form, 403),
        ("a wrong CSRF token", {"Host": own, "Cookie": cookie}, form + "&csrf=" + "0" * 64, 403),
        ("a foreign Origin", {"Host": own, "Cookie": cookie, "Origin": "http://evil.example"}, form, 403),
        ("no secret", {"Host": own}, form, 403),
    ]
    for why, headers, body, want in posts:
        headers = dict(headers, **{"Content-Type": "application/x-www-form-urlencoded"})
        status, _ = fetch(port, "POST", "/visits", headers, body.encode())
        assert status == want, f"a form post with {why} got {status}, not {want}"
    after = len(home.json("visit", "list"))
    assert after == before, f"a refused post wrote a visit ({before} → {after})"
    print(f"fences: {len(refusals) + len(posts)} foreign requests refused, nothing written")


def start_app(home):
    # Short timeout and interval: the relay's outage is seen, and its return
    # used, within seconds.
    proc = subprocess.Popen(
        [home.minqing, "app", "--no-browser", "--timeout", "3", "--interval", "5"], env=home.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    discovery = os.path.join(home.path, "app.json")
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"minqing app exited {proc.returncode}: {proc.stdout.read()}")
        if os.path.exists(discovery):
            try:
                with open(discovery, encoding="utf-8") as f:
                    info = json.load(f)
                return proc, info
            except (ValueError, OSError):
                pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("minqing app did not write its discovery file within 60 s")


class Walk:
    """The browser session, the screenshots, and the comparisons with the CLI."""

    def __init__(self, page, home, base, shots, ids, work):
        self.work = work
        self.page = page
        self.home = home
        self.base = base
        self.shots = shots
        self.ids = ids
        self.month = datetime.datetime.now(CHINA).strftime("%Y-%m")

    def shot(self, name, **kw):
        if self.shots:
            self.page.screenshot(path=os.path.join(self.shots, name), full_page=True, **kw)

    def main_text(self):
        return self.page.locator("main").inner_text()

    def no_ids_shown(self):
        """Names, not ids, wherever a person reads."""
        text = self.main_text()
        for name, rid in self.ids.items():
            if isinstance(rid, str):
                assert rid not in text, f"the id of {name} is shown as text on {self.page.url}"
        for hid in self.ids["households"]:
            assert hid not in text, f"a household id is shown on {self.page.url}"

    def nav(self, name):
        self.page.get_by_role("navigation", name="主导航").get_by_role("link", name=name).click()

    def reload_until(self, what, check, timeout=60):
        """Reloads the page until `check()` holds (a cadre presses F5)."""
        def again():
            self.page.reload()
            return check()
        until(what, again, timeout)

    def sync_row(self, name="小河村"):
        return self.page.locator("#sync-villages tbody tr", has_text=name)

    def enrol(self, bundle):
        """设置 first on an empty home; the enrolment file uploaded; the first
        sync on 同步."""
        page = self.page
        expect(page.get_by_role("heading", level=1)).to_have_text("设置")
        expect(page.locator("#setup-state")).to_contain_text("还没有登记")
        # Before enrolment every page leads to 设置.
        self.nav("今日")
        expect(page.get_by_role("heading", level=1)).to_have_text("设置")
        store = os.path.join(self.home.path, "store")
        page.get_by_label("登记文件（县里发给你的文件）").set_input_files(bundle)
        page.get_by_label("设置本机密码").fill(PASSPHRASE)
        page.get_by_label("再输一次密码").fill(PASSPHRASE)
        self.shot("settings-enrol.png")
        # Two different passphrases: refused, nothing written.
        page.get_by_label("再输一次密码").fill(PASSPHRASE + "!")
        page.get_by_role("button", name="登记本机").click()
        expect(page.get_by_role("status")).to_contain_text("两次输入的密码不一样")
        assert not os.path.exists(store), "a refused enrolment wrote a store"
        self.shot("settings-refused.png")
        page.get_by_label("登记文件（县里发给你的文件）").set_input_files(bundle)
        page.get_by_label("设置本机密码").fill(PASSPHRASE)
        page.get_by_label("再输一次密码").fill(PASSPHRASE)
        page.get_by_role("button", name="登记本机").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("同步")
        expect(page.get_by_role("status")).to_contain_text("本机已登记")
        # The first sync, by the background loop: 小河村 arrives from the relay.
        def first_sync():
            row = self.sync_row()
            if row.count() != 1:
                return False
            cells = row.locator("td")
            return (cells.nth(3).inner_text() in ("新分配，已取得", "已同步")
                    and cells.nth(1).inner_text() != "—")
        self.reload_until("the first sync shows 小河村 on 同步", first_sync)
        status = self.home.json("status")
        assert status["last_sync"], status
        assert [v["id"] for v in status["villages"]] == ["V001"], status
        villages = self.home.json("village", "list")
        assert [v["name"] for v in villages] == ["小河村"], villages
        who = self.home.json("whoami")
        assert who["cadre"] == "张伟", who
        cells = self.sync_row().locator("td")
        expect(cells.nth(2)).to_have_text("无（已同步到县里）")
        expect(cells.nth(1)).not_to_have_text("—")
        expect(page.locator("#sync-state")).to_contain_text("已连接县里")
        self.shot("sync-first.png")
        print(f"enrolled from 设置: device {who['device_id']}, first sync brought "
              f"{[v['id'] for v in status['villages']]} (last sync {status['last_sync']})")

    def offline_and_back(self, relay, other):
        """The relay stops: the app keeps working and 同步 says 离线 with the
        change not yet at the county; the relay returns: the change reaches
        it with no click (the other laptop receives it)."""
        page = self.page
        relay.stop()
        page.goto(self.base + "/visit/new?resident=" + self.ids["刘晓宇"])
        note = "断网时记的走访：孩子学习情况良好，奶奶身体健康。"
        page.get_by_label("走访记录").fill(note)
        page.get_by_role("button", name="保存").click()
        expect(page.get_by_role("status")).to_contain_text("已保存")
        self.nav("同步")
        self.reload_until("同步 shows 离线", lambda: "离线" in page.locator("#sync-state").inner_text())
        pending = {v["id"]: v["pending_changes"] for v in self.home.json("status")["villages"]}
        assert pending["V001"] >= 1, pending
        expect(self.sync_row().locator("td").nth(2)).to_have_text(f"{pending['V001']} 条")
        self.shot("sync-offline.png")
        relay.start()
        # No click: the loop's backoff finds the relay again.
        def delivered():
            try:
                return (self.sync_row().locator("td").nth(2).inner_text(timeout=5000)
                        == "无（已同步到县里）"
                        and "已连接县里" in page.locator("#sync-state").inner_text(timeout=5000))
            except PlaywrightError:  # read while the page was reloading itself
                return False
        # No F5 either: the 同步 page reloads itself (every 10 s between passes).
        try:
            until("同步 shows the change at the county, connected, with no reload", delivered, 90)
        except AssertionError as e:
            raise AssertionError(f"{e}; status: {self.home.json('status')}") from None
        assert all(v["pending_changes"] == 0 for v in self.home.json("status")["villages"])
        self.shot("sync.png")

        def arrived():
            other.run("sync")
            return note in [v["note"] for v in other.json("visit", "list")]
        until("the visit logged offline reaches the other laptop through the relay", arrived)
        print(f"offline: {pending['V001']} change(s) pending shown as on `status --json`; "
              "relay back: delivered with no click, received by the second laptop")

    def settings(self, relay_addr):
        """设置 on the enrolled laptop: the device, the relay, where the data lives."""
        page = self.page
        self.nav("设置")
        who = self.home.json("whoami")
        expect(page.locator("#device")).to_contain_text(who["device_id"])
        expect(page.locator("#data-location")).to_have_text(who["home"])
        expect(page.locator("#relay")).to_contain_text("县中继")
        expect(page.locator("#relay")).to_contain_text(relay_addr)
        expect(page.locator("#assigned")).to_have_text("V001")
        expect(page.locator("#held").get_by_role("link", name="小河村")).to_be_visible()
        for command in ["minqing passwd", "minqing backup", "minqing restore", "revoke --wipe"]:
            expect(page.locator("#at-the-terminal")).to_contain_text(command)
        self.shot("settings.png")

    def check_today_figures(self):
        """今日 against `village list`, `report monthly` and `demand list --overdue`."""
        self.nav("今日")
        villages = self.home.json("village", "list")
        due = sum(v["households"] for v in villages)
        report = self.home.json("report", "monthly", "--month", self.month)
        mine = [c for c in report["cadres"] if c["cadre"] == "张伟"]
        visited = mine[0]["households_visited"] if mine else 0
        overdue = self.home.json("demand", "list", "--overdue")
        expect(self.page.locator("#households-due")).to_have_text(str(due))
        expect(self.page.locator("#households-visited")).to_have_text(str(visited))
        expect(self.page.locator("#households-remaining")).to_have_text(str(due - visited))
        expect(self.page.get_by_role("heading", name=re.compile(r"^逾期诉求"))).to_have_text(
            f"逾期诉求（{len(overdue)}）")
        self.no_ids_shown()
        return due, visited, overdue

    def run(self):
        page = self.page
        # 今日, as the day starts: one household visited, one overdue demand.
        due, visited, overdue = self.check_today_figures()
        assert (due, visited, len(overdue)) == (3, 1, 1), (due, visited, overdue)
        key = page.get_by_role("heading", name=re.compile("重点人员本月未走访"))
        expect(key).to_have_text("重点人员本月未走访（3/3）")
        self.shot("today-morning.png")

        # 村/户/人, then search by pinyin initials.
        self.nav("村/户/人")
        expect(page.get_by_role("link", name="小河村")).to_be_visible()
        self.shot("villages.png")
        page.get_by_role("link", name="小河村").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("小河村")
        expect(page.locator("#households tbody tr")).to_have_count(
            len(self.home.json("household", "list")))
        self.no_ids_shown()
        self.shot("village.png")
        page.locator("#households").get_by_role("link", name="小河村一组3号").click()
        main = page.locator("main")
        expect(main.get_by_role("link", name="王建国")).to_be_visible()
        expect(main.get_by_role("link", name="赵小红")).to_be_visible()
        self.no_ids_shown()
        self.shot("household.png")
        self.nav("村/户/人")
        page.get_by_label("查找居民").fill("lxy")
        page.get_by_role("button", name="查找").click()
        results = page.locator("#results")
        expect(results.get_by_role("link", name="李秀英")).to_be_visible()
        expect(results.get_by_role("link", name="刘晓宇")).to_be_visible()
        self.no_ids_shown()
        self.shot("search.png")
        page.get_by_label("人员类别").select_option("老党员")
        page.get_by_role("button", name="查找").click()
        expect(results.get_by_role("link")).to_have_count(1)
        results.get_by_role("link", name="李秀英").click()

        # The resident's page.
        expect(page.get_by_role("heading", level=1)).to_have_text("李秀英")
        li = self.ids["李秀英"]
        assert page.url.endswith("/resident/" + li), page.url
        expect(page.get_by_text("370811195803151224")).to_be_visible()
        self.no_ids_shown()

        # 记民情日记 for her, with the mouse.
        page.locator("main").get_by_role("link", name="记民情日记").click()
        expect(page.get_by_label("走访对象")).to_have_value(li)
        expect(page.get_by_label("走访类型")).to_have_value("重点走访")
        today = datetime.datetime.now(CHINA).date().isoformat()
        expect(page.get_by_label("日期")).to_have_value(today)
        note = "老人腿脚不便，反映自来水压力小，已联系村委查看管道。"
        page.get_by_label("走访记录").fill(note)
        self.shot("visit.png")
        page.get_by_role("button", name="保存").click()
        expect(page.get_by_role("status")).to_contain_text("已保存")
        shown = self.home.json("resident", "show", li)
        assert [v["note"] for v in shown["visits"]] == [note], shown["visits"]
        assert shown["visits"][0]["kind"] == "重点走访" and shown["visits"][0]["date"] == today

        # 记民情日记 with the keyboard only: search, pick, write, save.
        page.goto(self.base + "/visit/new")
        page.keyboard.type("wjg")
        page.keyboard.press("Enter")
        expect(page.locator("#results").get_by_role("link", name="王建国")).to_be_visible()
        page.keyboard.press("Tab")  # 查找
        page.keyboard.press("Tab")  # the first result
        page.keyboard.press("Enter")
        expect(page.get_by_label("走访对象")).to_have_value(self.ids["王建国"])
        page.keyboard.type("询问道路维修进展，群众希望尽快修好。")
        page.keyboard.press("Tab")  # 保存
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_contain_text("已保存")
        wang = self.home.json("resident", "show", self.ids["王建国"])
        assert len(wang["visits"]) == 1 and wang["visits"][0]["kind"] == "重点走访", wang["visits"]

        # A demand opened from her page and taken round the closed loop.
        page.goto(self.base + "/resident/" + li)
        page.locator("main").get_by_role("link", name="受理诉求").click()
        page.get_by_label("类别").fill("供水")
        page.get_by_label("诉求内容").fill("自来水水压不足，高峰时段断水")
        self.shot("demand-new.png")
        page.get_by_role("button", name="受理").click()
        expect(page.locator("#demand-status")).to_have_text("受理")
        demand = urllib.parse.urlsplit(page.url).path.rsplit("/", 1)[-1]
        self.ids["demand"] = demand
        self.no_ids_shown()
        steps = [
            ("转办", {"承办部门": "县水务局", "办理期限": (datetime.datetime.now(CHINA).date()
                                                + datetime.timedelta(days=10)).isoformat()}, "办理中"),
            ("督办", {"督办意见": "请水务局三日内上门查看"}, "办理中"),
            ("反馈", {"反馈内容": "已更换减压阀，水压恢复"}, "已反馈"),
            ("回访", {"满意度": "满意", "回访记录": "老人表示满意"}, "已回访"),
            ("销号", {}, "已销号"),
        ]
        for step, fields, status in steps:
            form = page.get_by_role("form", name=step)
            for label, value in fields.items():
                field = form.get_by_label(label)
                if label == "满意度":
                    field.select_option(value)
                else:
                    field.fill(value)
            form.get_by_role("button", name=step).click()
            expect(page.locator("#demand-status")).to_have_text(status)
            if step == "反馈":
                self.shot("demand.png")
            shown = self.home.json("demand", "show", demand)
            assert shown["status"] == status, (step, shown["status"])
        expect(page.get_by_role("button", name="重开")).to_be_visible()
        for gone in ["直办", "转办", "督办", "反馈", "回访", "销号"]:
            expect(page.get_by_role("button", name=gone, exact=True)).to_have_count(0)
        shown = self.home.json("demand", "show", demand)
        kinds = [e["kind_name"] for e in shown["events"]]
        assert kinds == ["受理", "转办", "督办", "反馈", "回访", "销号"], kinds
        assert shown["department"] == "县水务局" and shown["satisfaction"] == "满意", shown
        self.no_ids_shown()
        self.shot("demand-closed.png")

        # The demand list, with the overdue one on top, named.
        self.nav("诉求")
        overdue = self.home.json("demand", "list", "--overdue")
        expect(page.get_by_role("heading", name=re.compile(r"^逾期诉求"))).to_have_text(
            f"逾期诉求（{len(overdue)}）")
        all_demands = self.home.json("demand", "list")
        expect(page.locator("#demands tbody tr")).to_have_count(len(all_demands))
        self.no_ids_shown()
        self.shot("demands.png")

        # 添加居民 on a household's page: a bad 身份证号 is refused (nothing
        # written); one already in the village is saved with a warning naming
        # who has it.
        residents_before = len(self.home.json("resident", "list"))
        page.goto(self.base + "/household/" + self.ids["households"][1])
        page.locator("main").get_by_role("link", name="添加居民").click()
        page.get_by_label("姓名").fill("李秀音")
        page.get_by_label("身份证号").fill("12345")
        page.get_by_role("button", name="添加居民").click()
        expect(page.get_by_role("status")).to_contain_text("身份证号")
        expect(page.get_by_label("姓名")).to_have_value("李秀音")
        assert len(self.home.json("resident", "list")) == residents_before, "a refused post wrote"
        page.get_by_label("身份证号").fill("370811195803151224")
        self.shot("resident-new.png")
        page.get_by_role("button", name="添加居民").click()
        expect(page.get_by_role("status")).to_contain_text("李秀英（小河村三组12号）也登记了这个身份证号")
        expect(page.get_by_role("heading", level=1)).to_have_text("李秀音")
        dups = self.home.json("resident", "duplicates")
        assert len(dups) == 1 and {r["name"] for r in dups[0]["residents"]} == {"李秀英", "李秀音"}, dups
        self.shot("resident-duplicate.png")

        # 请假/补访: a leave for last month, then a 补访 this month settles it.
        self.nav("请假/补访")
        last_month = (datetime.datetime.now(CHINA).date().replace(day=1)
                      - datetime.timedelta(days=1)).strftime("%Y-%m")
        page.get_by_label("请假月份").fill(last_month)
        page.get_by_label("请假原因").fill("参加县里组织的乡村振兴培训")
        page.get_by_role("button", name="记录请假").click()
        expect(page.get_by_role("status")).to_contain_text("已记录请假")
        leaves = self.home.json("leave", "list")
        assert [(l["month"], l["settled_by"]) for l in leaves] == [(last_month, None)], leaves
        expect(page.locator("#leaves tbody tr")).to_have_count(1)
        expect(page.locator("#leaves")).to_contain_text("待补访")
        self.nav("今日")
        expect(page.get_by_role("heading", name=re.compile(r"^待补访"))).to_have_text("待补访（1）")
        self.nav("请假/补访")
        self.shot("leave.png")
        page.locator("#leaves").get_by_role("link", name="记补访").click()
        page.get_by_label("查找居民").fill("zxh")
        page.get_by_role("button", name="查找").click()
        page.locator("#results").get_by_role("link", name="赵小红").click()
        expect(page.get_by_label("走访类型")).to_have_value("补访")
        page.get_by_label("走访记录").fill("补上月走访：家中一切正常。")
        page.get_by_role("button", name="保存").click()
        expect(page.get_by_role("status")).to_contain_text("已保存")
        leaves = self.home.json("leave", "list")
        assert leaves[0]["settled_on"] == today, leaves
        self.nav("请假/补访")
        expect(page.locator("#leaves")).to_contain_text("已补访 " + today)

        # 报表: the figures equal `report monthly|ledger --json`; the .xlsx
        # downloaded reads back with the same figures.
        self.nav("报表")
        report = self.home.json("report", "monthly", "--month", self.month)
        mine = [c for c in report["cadres"] if c["cadre"] == "张伟"][0]
        row = page.locator("#monthly tbody tr", has_text="张伟")
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text(str(mine["visits"]))
        expect(cells.nth(4)).to_have_text(str(mine["visits_by_kind"]["补访"]))
        expect(cells.nth(5)).to_have_text(
            f"{mine['households_visited']}/{mine['households_assigned']}")
        expect(cells.nth(6)).to_have_text(f"{round(mine['coverage'] * 100)}%")
        ledger = self.home.json("report", "ledger")
        expect(page.locator("#ledger-collected")).to_have_text(str(ledger["collected"]))
        expect(page.locator("#ledger-closed")).to_have_text(str(ledger["closed"]))
        expect(page.locator("#ledger-overdue")).to_have_text(str(len(ledger["overdue"])))
        expect(page.get_by_role("img", name="走访次数（按干部）")).to_be_visible()
        self.no_ids_shown()
        self.shot("report.png")
        with page.expect_download() as dl:
            page.get_by_role("link", name="下载月报（.xlsx）").click()
        path = os.path.join(self.work, dl.value.suggested_filename)
        dl.value.save_as(path)
        book = openpyxl.load_workbook(path, read_only=True)
        rows = list(book.worksheets[0].iter_rows(values_only=True))
        header = list(rows[0])
        got = [r for r in rows[1:] if r[0] == "张伟"][0]
        assert got[header.index("走访")] == mine["visits"], (header, got, mine)
        assert got[header.index("走访户数")] == mine["households_visited"], (header, got)
        assert got[header.index("已补访")] == mine["makeups_done"] == 1, (header, got)
        print(f"monthly .xlsx read back: 张伟 {mine['visits']} visits, as `report monthly --json`")
        page.get_by_role("link", name="本月民情日记（打印）").click()
        diary = self.home.json("visit", "list", "--cadre", "张伟", "--month", self.month)
        expect(page.locator("#diary-count")).to_have_text(str(len(diary)))
        expect(page.locator("#diary tbody tr")).to_have_count(len(diary))
        self.no_ids_shown()
        page.emulate_media(media="print")
        self.shot("diary-print.png")
        page.emulate_media(media="screen")

        # The resident file, printed.
        page.goto(self.base + "/resident/" + li)
        page.emulate_media(media="print")
        self.shot("resident-print.png")
        page.emulate_media(media="screen")
        self.shot("resident.png")

        # 今日 at the end of the day: figures follow the work, and equal the CLI's.
        due, visited, overdue = self.check_today_figures()
        assert (due, visited) == (3, 2), (due, visited)
        expect(key).to_have_text("重点人员本月未走访（1/3）")
        self.shot("today.png")

        # 导入户籍: upload the test register, the preview equals `import
        # residents --dry-run --json` (rejected rows by number), then confirm.
        register = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "register.csv")
        dry = self.home.json("import", "residents", register, "--village", "V001", "--dry-run")
        residents_before = len(self.home.json("resident", "list"))
        households_before = len(self.home.json("household", "list"))
        self.nav("导入户籍")
        page.get_by_label("导入到村").select_option(label="小河村")
        page.get_by_label("户籍登记表（.xlsx 或 .csv）").set_input_files(register)
        page.get_by_role("button", name="预览").click()
        expect(page.locator("#import-rows")).to_have_text(str(dry["data_rows"]))
        expect(page.locator("#import-new")).to_have_text(str(dry["residents_new"]))
        expect(page.locator("#import-rejected")).to_have_text(str(len(dry["rejected"])))
        rejected = page.locator("#rejected tbody tr")
        expect(rejected).to_have_count(len(dry["rejected"]))
        for i, r in enumerate(dry["rejected"]):
            expect(rejected.nth(i).locator("td").first).to_have_text(f"第{r['row']}行")
        assert len(self.home.json("resident", "list")) == residents_before, "a preview wrote"
        self.shot("import-preview.png")
        page.get_by_role("button", name="确认导入").click()
        expect(page.get_by_role("status")).to_contain_text("已导入户籍")
        assert len(self.home.json("resident", "list")) == residents_before + dry["residents_new"]
        assert len(self.home.json("household", "list")) == households_before + dry["households_new"]
        expect(page.locator("#households tbody tr")).to_have_count(
            households_before + dry["households_new"])
        again = self.home.json("import", "residents", register, "--village", "V001", "--dry-run")
        assert again["residents_new"] == 0, again
        csv_dry = dry
        self.nav("导入户籍")
        # The same with an .xlsx register: one good row, one bad (row 3).
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["户号", "姓名", "性别", "身份证号", "与户主关系", "家庭住址"])
        sheet.append(["0901", "周桂兰", "女", "370811196203041229", "户主", "小河村九组1号"])
        sheet.append(["0901", "周建", "男", "3708111962", "子", "小河村九组1号"])
        xlsx = os.path.join(self.work, "登记表.xlsx")
        book.save(xlsx)
        dry = self.home.json("import", "residents", xlsx, "--village", "V001", "--dry-run")
        assert dry["residents_new"] == 1 and [r["row"] for r in dry["rejected"]] == [3], dry
        page.get_by_label("户籍登记表（.xlsx 或 .csv）").set_input_files(xlsx)
        page.get_by_role("button", name="预览").click()
        expect(page.locator("#import-new")).to_have_text("1")
        expect(page.locator("#rejected tbody tr td").first).to_have_text("第3行")
        page.get_by_role("button", name="确认导入").click()
        expect(page.get_by_role("status")).to_contain_text("已导入户籍")
        names = {r["name"] for r in self.home.json("resident", "list")}
        assert "周桂兰" in names and "周建" not in names
        print(f"import: {csv_dry['residents_new']} residents, {len(csv_dry['rejected'])} rows rejected "
              f"(rows {[r['row'] for r in csv_dry['rejected']]}), as `import --dry-run --json`; "
              ".xlsx: 1 new, row 3 rejected")


def stop_app(app):
    """SIGTERM; the app's output; asserts it exits 0."""
    app.terminate()
    try:
        out, _ = app.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        app.kill()
        out, _ = app.communicate()
    assert app.returncode == 0, f"minqing app exited {app.returncode} on SIGTERM:\n{out}"
    return out


def reused_bundle(browser, minqing, work, bundle, requests, shots):
    """A second empty laptop given the same, already used, enrolment file: 设置
    refuses it in Chinese and nothing is written."""
    home = Home(minqing, work, "home-reused")
    app, info = start_app(home)
    try:
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"http://127.0.0.1:{info['port']}/login?k={info['secret']}")
        page.get_by_label("登记文件（县里发给你的文件）").set_input_files(bundle)
        page.get_by_label("设置本机密码").fill(PASSPHRASE)
        page.get_by_label("再输一次密码").fill(PASSPHRASE)
        page.get_by_role("button", name="登记本机").click()
        status = page.get_by_role("status")
        expect(status).to_contain_text("这个登记文件已经在另一台电脑上用过了")
        expect(status).to_contain_text("新的登记文件")
        expect(page.get_by_label("设置本机密码")).to_have_value("")
        if shots:
            page.screenshot(path=os.path.join(shots, "settings-reused.png"), full_page=True)
        assert not os.path.exists(os.path.join(home.path, "store")), "a refused bundle left a store"
        context.close()
    finally:
        stop_app(app)
    print("a reused enrolment file: refused on 设置 in Chinese, nothing written")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minqing", required=True, help="the minqing binary")
    ap.add_argument("--relay", required=True, help="the minqing-relay binary")
    ap.add_argument("--shots", help="write a screenshot of each page here")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = ap.parse_args()
    minqing = os.path.abspath(args.minqing)
    if args.shots:
        os.makedirs(args.shots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="minqing-browser-")
    today = datetime.datetime.now(CHINA).date()
    # The county: a relay with the village; this laptop and a colleague's
    # enrolled by the operator, their files written out.
    relay = Relay(os.path.abspath(args.relay), work)
    relay.run("village", "add", "--id", "V001", "--name", "小河村")
    bundle = os.path.join(work, "张伟的登记文件.json")
    relay.enroll("张伟", "V001", bundle)
    other_bundle = os.path.join(work, "李娜的登记文件.json")
    relay.enroll("李娜", "V001", other_bundle)
    app = None
    requests = []
    try:
        relay.start()
        other = Home(minqing, work, "home-other")
        other.run("init", "--bundle", other_bundle)
        home = Home(minqing, work)
        app, info = start_app(home)
        base = f"http://127.0.0.1:{info['port']}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--no-sandbox", "--lang=zh-CN", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/login?k={info['secret']}")
            walk = Walk(page, home, base, args.shots, {}, work)
            walk.enrol(bundle)
            walk.ids = prepare(home, today)
            check_fences(home, info["port"], info["secret"])
            walk.run()
            walk.offline_and_back(relay, other)
            walk.settings(relay.addr)
            reused_bundle(browser, minqing, work, bundle, requests, args.shots)
            browser.close()
    finally:
        out = stop_app(app) if app is not None else ""
        relay.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    assert "张伟" not in out and PASSPHRASE not in out, f"the app's output names personal data:\n{out}"
    hosts = {urllib.parse.urlsplit(u).hostname for u in requests}
    assert requests and hosts <= {"127.0.0.1"}, f"requests left 127.0.0.1: {sorted(hosts)}"
    print(f"browser test passed: {len(requests)} requests, all to 127.0.0.1")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"browser test failed: {e}", file=sys.stderr)
        sys.exit(1)
