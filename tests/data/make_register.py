#!/usr/bin/env python3
"""Makes tests/data/register.csv: a realistic household register (户籍登记表) of one
village, with Chinese headers, extra columns, blank rows, full-width spaces and a
known set of bad rows. Deterministic (fixed seed); the expected counts are printed
and kept in tests/data/register.expected.json."""
import csv, json, random, datetime, os

rng = random.Random(20261127)
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
M = "10X98765432"

def id_card(region, birth, seq, female):
    # 17th digit odd = male, even = female
    s = seq * 10 + (rng.choice([0, 2, 4, 6, 8]) if female else rng.choice([1, 3, 5, 7, 9]))
    body = f"{region}{birth:%Y%m%d}{s:03d}"
    return body + M[sum(int(c) * w for c, w in zip(body, W)) % 11]

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN_M = ["建国", "志强", "伟", "军", "海涛", "立新", "永福", "德明", "文博", "子轩", "浩然", "宇航", "家乐", "春生", "国栋"]
GIVEN_F = ["秀英", "桂兰", "玉梅", "淑珍", "丽娟", "红霞", "静", "婷婷", "欣怡", "梓涵", "雨萱", "春花", "翠英", "美玲", "晓燕"]
TAGS_HEAD = ["", "", "", "老党员", "退役军人", "困难户", "低保户"]
REGION = "370811"

rows = []
bad = []
households = 0
for h in range(1, 121):
    households += 1
    number = f"0{h:03d}"
    addr = f"小河村{(h - 1) // 30 + 1}组{h}号"
    surname = SURNAMES[h % len(SURNAMES)]
    head_birth = datetime.date(1940 + rng.randrange(45), rng.randrange(1, 13), rng.randrange(1, 28))
    size = rng.choice([1, 1, 2, 2, 2, 3, 3, 4, 5])
    members = [("户主", False, head_birth)]
    if size >= 2:
        members.append(("配偶", True, head_birth + datetime.timedelta(days=rng.randrange(-900, 900))))
    for i in range(size - 2):
        female = rng.random() < 0.5
        kb = datetime.date(min(head_birth.year + 22 + i * 3, 2019), rng.randrange(1, 13), rng.randrange(1, 28))
        members.append(("女" if female else "子", female, kb))
    for rel, female, birth in members:
        name = surname + rng.choice(GIVEN_F if female else GIVEN_M) if rel != "配偶" else rng.choice(SURNAMES) + rng.choice(GIVEN_F)
        idc = id_card(REGION, birth, rng.randrange(10, 99), female)
        phone = "1" + rng.choice("35789") + "".join(str(rng.randrange(10)) for _ in range(9)) if rel in ("户主", "配偶") else ""
        tags = []
        if rel == "户主":
            t = rng.choice(TAGS_HEAD)
            if t:
                tags.append(t)
            if size == 1 and birth.year < 1960:
                tags.append("独居老人")
        if birth.year >= 2010 and rng.random() < 0.3:
            tags.append("留守儿童")
        row = {
            "序号": "",
            "户号": number,
            "姓名": name,
            "性别": ("女" if female else "男") if rng.random() < 0.7 else "",
            "身份证号": idc,
            "出生日期": birth.isoformat() if rng.random() < 0.5 else "",
            "与户主关系": rel,
            "联系电话": phone,
            "家庭住址": addr,
            "人员类别": "、".join(tags),
            "备注": rng.choice(["", "", "", "常年外出务工", "长期卧床"]),
        }
        # full-width spaces around some names
        if rng.random() < 0.05:
            row["姓名"] = "\u3000" + row["姓名"] + "\u3000"
        rows.append(row)

# Inject bad rows at fixed places (each replaces a good row's content).
def spoil(i, reason, **changes):
    rows[i].update(changes)
    bad.append({"index": i, "reason": reason})

spoil(7, "身份证号 check digit", 身份证号=rows[7]["身份证号"][:17] + ("0" if rows[7]["身份证号"][17] != "0" else "1"))
spoil(40, "empty name", 姓名="")
spoil(77, "phone", 联系电话="12345")
spoil(120, "身份证号 length", 身份证号="37081119")
spoil(150, "gender contradicts 身份证号", 性别="男" if int(rows[150]["身份证号"][16]) % 2 == 0 else "女")
spoil(201, "birth date contradicts 身份证号", 出生日期="1999-01-01")
spoil(230, "malformed date", 出生日期="1970-13-45")

for i, row in enumerate(rows):
    row["序号"] = str(i + 1)
ids = [r["身份证号"] for r in rows]
assert len(ids) == len(set(ids)), "duplicate 身份证号 in the generated register"

# blank rows at a few places (not counted as data rows)
out = []
for i, row in enumerate(rows):
    if i in (33, 99, 180):
        out.append({k: "" for k in row})
    out.append(row)

here = os.path.dirname(os.path.abspath(__file__))
cols = ["序号", "户号", "姓名", "性别", "身份证号", "出生日期", "与户主关系", "联系电话", "家庭住址", "人员类别", "备注"]
with open(os.path.join(here, "register.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    for row in out:
        w.writerow(row)

# Spreadsheet row numbers (header is row 1) of the bad rows, after blank rows are inserted.
def sheet_row(i):
    return i + 2 + sum(1 for b in (33, 99, 180) if b <= i)

expected = {
    "data_rows": len(rows),
    "blank_rows": 3,
    "imported": len(rows) - len(bad),
    "rejected": len(bad),
    "households": households,
    "bad_rows": [{"row": sheet_row(b["index"]), "reason": b["reason"]} for b in bad],
}
with open(os.path.join(here, "register.expected.json"), "w", encoding="utf-8") as f:
    json.dump(expected, f, ensure_ascii=False, indent=2)
print(json.dumps(expected, ensure_ascii=False))
