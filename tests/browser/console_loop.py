#!/usr/bin/env python3
"""The closed loop across the county console, in a real browser (Debian's
chromium driven by Playwright), against a real relay and a real laptop on
127.0.0.1.

A relay with a department list and two console accounts serves laptops and
the console (HTTPS, certificate from the relay's CA: checked here with
Python's ssl against ca.pem). The cadre's laptop transfers a demand to 水务局
offline, then syncs. The department (县水务局) logs in to the console, finds
the demand in its inbox with the resident's numbers masked, records 办理情况
and 办结. The cadre syncs, opens the demand in its own app (minqing app),
sees the department's events, records 反馈 and 回访 and closes it; after the
last sync `minqing-relay report ledger --json` counts it as closed. Every
request the browser makes is recorded; the test fails if one leaves
127.0.0.1. With --shots DIR, a screenshot of each page is written there
(docs/console/ holds the committed ones).

Usage: python3 tests/browser/console_loop.py --minqing target/debug/minqing \
           --relay target/debug/minqing-relay [--shots docs/console]
Needs: PyPI playwright, /usr/bin/chromium, fonts-noto-cjk (.ci/run installs them).
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

import openpyxl
from playwright.sync_api import expect, sync_playwright

CHINA = datetime.timezone(datetime.timedelta(hours=8))
PASSPHRASE = "browser-test-passphrase"
PASSWORD = "county-console-pw-1"
ID_CARD = "370811195803151224"
PHONE = "13905371234"


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Relay:
    def __init__(self, binary, root):
        self.binary = binary
        self.home = os.path.join(root, "relay")
        self.pass_file = os.path.join(root, "relay-pass")
        with open(self.pass_file, "w", encoding="utf-8") as f:
            f.write(PASSPHRASE + "\n")
        os.chmod(self.pass_file, 0o600)
        self.proc = None
        self.log = os.path.join(root, "relay.log")

    def run(self, *argv, stdin=None):
        out = subprocess.run(
            [self.binary, "--home", self.home, "--passphrase-file", self.pass_file, *argv],
            capture_output=True, text=True, timeout=120, input=stdin)
        if out.returncode != 0:
            raise AssertionError(f"minqing-relay {' '.join(argv)} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def start(self):
        log = open(self.log, "w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [self.binary, "--home", self.home, "--passphrase-file", self.pass_file, "serve"],
            stdout=subprocess.DEVNULL, stderr=log, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            with open(self.log, encoding="utf-8") as f:
                text = f.read()
            if "console listening on" in text and "relay " in text and " listening on " in text:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"minqing-relay serve exited {self.proc.returncode}:\n{text}")
            time.sleep(0.2)
        raise AssertionError("minqing-relay serve did not listen within 60 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Laptop:
    def __init__(self, minqing, root):
        self.minqing = minqing
        self.path = os.path.join(root, "laptop")
        self.pass_file = os.path.join(root, "laptop-pass")
        with open(self.pass_file, "w", encoding="utf-8") as f:
            f.write(PASSPHRASE + "\n")
        os.chmod(self.pass_file, 0o600)
        self.env = dict(os.environ, MINQING_HOME=self.path, MINQING_PASSPHRASE_FILE=self.pass_file)
        self.env.pop("MINQING_LOG", None)

    def run(self, *argv):
        out = subprocess.run([self.minqing, *argv], env=self.env, capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise AssertionError(f"minqing {' '.join(argv)} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def new_id(self, *argv):
        return self.run(*argv).strip().splitlines()[-1]

    def json(self, *argv):
        return json.loads(self.run(*argv, "--json"))


def start_app(laptop):
    proc = subprocess.Popen([laptop.minqing, "app", "--no-browser"], env=laptop.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    discovery = os.path.join(laptop.path, "app.json")
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"minqing app exited {proc.returncode}: {proc.stdout.read()}")
        if os.path.exists(discovery):
            try:
                with open(discovery, encoding="utf-8") as f:
                    return proc, json.load(f)
            except (ValueError, OSError):
                pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("minqing app did not write its discovery file within 60 s")


def check_certificate(relay, port):
    """The console's certificate verifies against the relay's CA (and only it)."""
    ctx = ssl.create_default_context(cafile=os.path.join(relay.home, "ca", "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()
    plain = ssl.create_default_context()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with plain.wrap_socket(raw, server_hostname="127.0.0.1"):
                raise AssertionError("the console's certificate verified without the relay's CA")
    except ssl.SSLCertVerificationError:
        pass


def ledger(relay):
    return json.loads(relay.run("report", "ledger", "--json"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minqing", required=True)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--shots")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.shots:
        os.makedirs(args.shots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="minqing-console-")
    relay = Relay(os.path.abspath(args.relay), work)
    laptop = Laptop(os.path.abspath(args.minqing), work)
    app = None
    requests = []
    try:
        relay.run("init", "--name", "城关县中继", "--listen", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}")
        relay.run("village", "add", "--id", "V001", "--name", "小河村", "--township", "城关镇")
        relay.run("department", "add", "县水务局", "--alias", "水务局,县水利局")
        relay.run("user", "add", "shuiwu", "--role", "department", "--department", "水务局",
                  "--display", "张科长", "--password-stdin", stdin=PASSWORD + "\n")
        relay.run("user", "add", "ducha", "--role", "supervisor", "--scope", "county",
                  "--display", "督查室", "--password-stdin", stdin=PASSWORD + "\n")
        port = free_port(socket.SOCK_STREAM)
        config_path = os.path.join(relay.home, "config.json")
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        config["console"] = {"listen": f"127.0.0.1:{port}"}
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
        relay.start()
        check_certificate(relay, port)
        bundle = os.path.join(work, "cadre.bundle")
        relay.run("enroll", "--cadre", "李书记", "--villages", "V001", "--out", bundle)
        laptop.run("init", "--bundle", bundle)
        laptop.run("sync", "--timeout", "20")

        # Offline on the laptop: a resident, a demand transferred to 水务局.
        h = laptop.new_id("household", "add", "--village", "V001", "--address", "小河村三组12号")
        r = laptop.new_id("resident", "add", "--household", h, "--name", "李秀英",
                          "--id-card", ID_CARD, "--phone", PHONE)
        laptop.run("visit", "log", "--household", h, "--resident", r, "--kind", "普遍走访",
                   "--note", "了解供水情况。")
        demand = laptop.new_id("demand", "open", "--resident", r, "--category", "供水",
                               "--text", "自来水管破裂，已停水三天")
        due = (datetime.datetime.now(CHINA).date() + datetime.timedelta(days=7)).isoformat()
        laptop.run("demand", "transfer", demand, "--to", "水务局", "--due", due)
        laptop.run("sync", "--timeout", "20")

        console = f"https://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=[
                "--no-sandbox", "--lang=zh-CN", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            # The certificate was verified against the relay's CA above; the
            # browser has no copy of that CA in its store.
            dept = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900},
                                       ignore_https_errors=True)
            dept.on("request", lambda q: requests.append(q.url))
            page = dept.new_page()
            page.set_default_timeout(15_000)

            def shot(name):
                if args.shots:
                    page.screenshot(path=os.path.join(args.shots, name), full_page=True)

            page.goto(f"{console}/inbox")
            expect(page.get_by_role("heading", name="登录")).to_be_visible()
            page.get_by_label("账号").fill("shuiwu")
            page.get_by_label("密码").fill("wrong-password-1")
            page.get_by_role("button", name="登录").click()
            expect(page.get_by_role("alert")).to_contain_text("账号或密码不对")
            page.get_by_label("密码").fill(PASSWORD)
            shot("login.png")
            page.get_by_role("button", name="登录").click()
            expect(page.get_by_role("heading", name="待办诉求")).to_be_visible()
            row = page.get_by_role("row").filter(has_text="自来水管破裂")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("李秀英")
            expect(row).to_contain_text(due)
            shot("inbox.png")
            row.get_by_role("link").click()
            expect(page.locator("#resident-id-card")).to_have_text("3708**********1224")
            expect(page.locator("#resident-phone")).to_have_text("139****1234")
            assert ID_CARD not in page.content() and PHONE not in page.content()
            page.get_by_role("textbox", name="办理情况").fill("已派人现场勘察，明日抢修。")
            page.get_by_role("button", name="记录办理情况").click()
            expect(page.get_by_role("status")).to_contain_text("已保存")
            page.get_by_label("办结答复").fill("管道已修复，已恢复供水。")
            page.get_by_role("button", name="办结").click()
            expect(page.locator("#demand-status")).to_have_text("已办结")
            shot("demand.png")
            page.get_by_role("button", name="显示完整号码（将记入审计日志）").click()
            expect(page.locator("#resident-id-card")).to_have_text(ID_CARD)
            audit = json.loads(relay.run("audit", "--json"))
            assert any(e["kind"] == "console_view_unmasked" for e in audit), audit
            dept.close()

            # The cadre: the next sync brings the department's events.
            laptop.run("sync", "--timeout", "20")
            app, info = start_app(laptop)
            base = f"http://127.0.0.1:{info['port']}"
            cadre = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
            cadre.on("request", lambda q: requests.append(q.url))
            page = cadre.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/login?k={info['secret']}")
            page.goto(f"{base}/demand/{demand}")
            expect(page.locator("#demand-status")).to_have_text("已办结")
            timeline = page.locator("ol.timeline")
            expect(timeline).to_contain_text("办理情况 · 张科长")
            expect(timeline).to_contain_text("管道已修复，已恢复供水。")
            shot("cadre-sees.png")
            page.get_by_label("反馈内容").fill("已电话告知群众：管道已修复。")
            page.get_by_role("button", name="反馈", exact=True).click()
            expect(page.locator("#demand-status")).to_have_text("已反馈")
            page.get_by_label("满意度").select_option("满意")
            page.get_by_role("button", name="回访", exact=True).click()
            expect(page.locator("#demand-status")).to_have_text("已回访")
            page.get_by_role("button", name="销号", exact=True).click()
            expect(page.locator("#demand-status")).to_have_text("已销号")
            cadre.close()
            laptop.run("sync", "--timeout", "20")
            shown = laptop.json("demand", "show", demand)
            assert shown["status"] == "已销号", shown
            deadline = time.time() + 30
            while True:
                report = ledger(relay)
                if report["closed"] == 1:
                    break
                assert time.time() < deadline, f"the relay's ledger does not count it closed: {report}"
                time.sleep(0.5)
            assert report["collected"] == 1, report

            # The county supervisor's dashboard and its .xlsx count it as
            # resolved, with the figures of `report ledger --json`.
            sup = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900},
                                      ignore_https_errors=True, accept_downloads=True)
            sup.on("request", lambda q: requests.append(q.url))
            page = sup.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{console}/login")
            page.get_by_label("账号").fill("ducha")
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            expect(page.get_by_role("heading", name="看板", exact=True)).to_be_visible()
            expect(page.locator("#ledger-collected")).to_have_text(str(report["collected"]))
            expect(page.locator("#ledger-closed")).to_have_text(str(report["closed"]))
            expect(page.locator("#ledger-rate")).to_have_text(f"{report['resolution_rate'] * 100:.0f}%")
            expect(page.locator("#ledger-overdue")).to_have_text(str(len(report["overdue"])))
            month = datetime.datetime.now(CHINA).strftime("%Y-%m")
            monthly = json.loads(relay.run("report", "monthly", "--month", month, "--json"))
            row = page.locator("#monthly-cadres tbody tr").filter(has_text="李书记")
            expect(row.locator("td").nth(1)).to_have_text(str(monthly["cadres"][0]["visits"]))
            shot("dashboard.png")
            with page.expect_download() as dl:
                page.get_by_role("link", name="下载问题台账（.xlsx）").click()
            path = os.path.join(work, "ledger.xlsx")
            dl.value.save_as(path)
            book = openpyxl.load_workbook(path)
            summary = {row[0]: row[1] for row in book.worksheets[0].iter_rows(values_only=True)
                       if row and row[0] in ("收集", "销号")}
            assert summary == {"收集": report["collected"], "销号": report["closed"]}, summary
            # The 督查通报: from the dashboard (last month by default), then
            # this month's, whose coverage is the sum of `report monthly`'s.
            page.get_by_role("link", name="上月督查通报（可打印）").click()
            expect(page.get_by_role("heading", name="民情走访督查通报")).to_be_visible()
            page.get_by_label("月份").fill(month)
            page.get_by_role("button", name="查看").click()
            y, m = month.split("-")
            expect(page.get_by_role("heading", level=1)).to_have_text(
                f"全县民情走访督查通报（{int(y)}年{int(m)}月）")
            total = page.locator("#coverage-total")
            due = sum(c["households_assigned"] for c in monthly["cadres"])
            visited = sum(c["households_visited"] for c in monthly["cadres"])
            expect(total.locator("[data-k=due]")).to_have_text(str(due))
            expect(total.locator("[data-k=visited]")).to_have_text(str(visited))
            shot("bulletin.png")
            # Printed: the bulletin without navigation, forms or buttons.
            page.emulate_media(media="print")
            expect(page.locator("header.top")).to_be_hidden()
            expect(page.get_by_role("button", name="打印")).to_be_hidden()
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            page.emulate_media(media="screen")
            sup.close()
            browser.close()
    finally:
        if app:
            app.terminate()
            try:
                app.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                app.kill()
        relay.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    hosts = {urllib.parse.urlsplit(u).hostname for u in requests}
    assert requests and hosts <= {"127.0.0.1"}, f"requests left 127.0.0.1: {sorted(hosts)}"
    print(f"console browser test passed: {len(requests)} requests, all to 127.0.0.1; "
          f"ledger closed {report['closed']} of {report['collected']}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"console browser test failed: {e}", file=sys.stderr)
        sys.exit(1)
