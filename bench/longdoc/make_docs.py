#!/usr/bin/env python3
"""Writes the long test documents for moat's long-document map-reduce benchmark (issue 16).

Usage: python3 bench/longdoc/make_docs.py [OUT_DIR]   (default: bench/longdoc/out/)

Writes OUT_DIR/zh.md (45,000 +/- 1,000 characters) and OUT_DIR/en.md (30,000 +/- 1,000 characters),
and bench/longdoc/planted.json. Lengths are Python `len`, i.e. Unicode code points.

The documents are a fictional start-up report ("ClaimPilot" / "智理赔", AI claims processing for
insurers). The prose comes from src/en.md and src/zh.md, hand-written for this benchmark; the
`<!-- gen:NAME -->` markers in them are filled from the data in pools_en.py / pools_zh.py (regions,
customers, competitors, risks), each entry with its own hand-written note. Entries are added round-robin
until a document reaches its target length, so the output is deterministic: no randomness, no clock.

One fact is planted only in the last paragraph of each document (the `<!-- planted -->` marker), for
the check that a fact seen only in the last chunk survives the reduce step. The script asserts that the
planted keyword occurs exactly once and within the last 5% of the text, that the text is valid UTF-8
with LF line endings and no control characters, and it prints character counts and how many
paragraphs are distinct. It also checks the small CI fixtures in tests/fixtures/longdoc/.
"""

import json
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree

import pools_en  # noqa: E402
import pools_zh  # noqa: E402

TARGETS = {"zh": 45000, "en": 30000}
TOLERANCE = 1000

PLANTED = {
    "en": {
        "keyword": "Nordhavn",
        "fact": "In October 2026, ClaimPilot signed Nordhavn Mutual, now its largest customer, to a five-year "
        "contract worth EUR 4.2 million a year, covering motor and home claims in Denmark and Norway.",
    },
    "zh": {
        "keyword": "北港互助",
        "fact": "2026年10月，智理赔与北港互助保险签下五年期合同，年费4200万元，覆盖车险和家庭财产险理赔；"
        "这家保险公司由此成为智理赔的最大客户。",
    },
}

# The last paragraph of each document: the planted fact, worded as news in the outlook section.
PLANTED_PARAGRAPH = {
    "en": "The most recent development came after the period covered by the figures above. {fact} "
    "The contract is not yet included in the September ARR.",
    "zh": "值得一提的是本报告数据截止日（2026年9月末）之后的一项进展：{fact}该合同尚未计入9月末的ARR。",
}

# Head-to-head tenders against each rival in 2025: (met, won by us). Indexed like COMPETITORS.
HEAD_TO_HEAD = [(9, 4), (5, 2), (7, 3), (6, 4), (4, 1), (8, 5), (3, 2), (2, 1), (4, 3), (3, 1), (5, 2), (6, 3), (4, 2), (3, 1), (2, 2), (1, 0), (3, 2), (2, 1)]

QUARTERS = [(y, q) for y in range(2023, 2027) for q in range(1, 5)][:15]  # 2023 Q1 .. 2026 Q3


def interpolate(anchors, points):
    """Geometric interpolation of (time, value) anchors at the given times (years as floats)."""
    out = []
    for t in points:
        for (t0, v0), (t1, v1) in zip(anchors, anchors[1:]):
            if t0 <= t <= t1:
                f = (t - t0) / (t1 - t0)
                out.append(v0 * (v1 / v0) ** f)
                break
    return out


def quarter_times():
    return [y - 2001 + q / 4 for (y, q) in QUARTERS]  # 22.0 = end of 2022, 22.25 = end of 2023 Q1


# ---------------------------------------------------------------- English


def en_regions(n):
    out = []
    for i, (name, prem, motor, cust, year, note) in enumerate(pools_en.REGIONS[:n]):
        motor_prem = prem * motor / 100
        handling = prem * 0.10
        label = name[4:] if name.startswith("the ") else name
        if cust == 0:
            lead = f"**{label[0].upper() + label[1:]}.** Property and casualty premium came to about EUR {prem} billion in 2025. ClaimPilot plans to enter in {year}."
        elif i % 3 == 0:
            lead = (
                f"**{label[0].upper() + label[1:]}.** Property and casualty insurers wrote about EUR {prem} billion of premium in {name} in 2025, "
                f"{motor}% of it in motor. ClaimPilot entered in {year} and now has {cust} customers there."
            )
        elif i % 3 == 1:
            lead = (
                f"**{label[0].upper() + label[1:]}.** With roughly EUR {prem} billion of premium, of which motor makes up {motor}%, {name} "
                f"is {'a mid-sized' if prem < 50 else 'one of the larger'} markets for ClaimPilot, which has signed {cust} insurers there since {year}."
            )
        else:
            lead = (
                f"**{label[0].upper() + label[1:]}.** ClaimPilot counts {cust} customers in {name}, a market it entered in {year}. "
                f"Premium there was about EUR {prem} billion in 2025, with motor at {motor}%."
            )
        sizing = (
            f"If handling costs run at a tenth of premium, insurers there spend about EUR {handling:.1f} billion a year on handling claims, "
            f"EUR {motor_prem * 0.10:.1f} billion of it in motor."
        )
        out.append(f"{lead} {sizing} {note}")
    return out


def en_customers(n):
    out = []
    for i, c in enumerate(pools_en.CUSTOMERS[:n]):
        name, country, line, live, claims, before, after, stp, value, note = c
        cut = round(100 * (before - after) / before)
        stp_s = (
            f"{stp}% of claims in the line are now settled without a handler touching them"
            if stp
            else "no claim in the line is settled automatically"
        )
        if i % 2 == 0:
            body = (
                f"**{name}** ({country}, {line}, live since {live}) handles about {claims:,} claims a year in the line ClaimPilot serves. "
                f"The average time from first notice to settlement fell from {before:g} to {after:g} days, a cut of {cut}%, and {stp_s}. "
                f"The contract is worth about EUR {value:,}k a year."
            )
        else:
            body = (
                f"**{name}**, a {line} insurer in {country}, went live in {live}. On some {claims:,} claims a year, "
                f"the time to settle dropped by {cut}% (from {before:g} days to {after:g}), and {stp_s}. "
                f"It pays roughly EUR {value:,}k a year."
            )
        out.append(f"{body} {note}")
    return out


def en_competitors(n):
    out = []
    for i, c in enumerate(pools_en.COMPETITORS[:n]):
        name, founded, base, focus, raised, rnd, emp, strength, weakness = c
        met, won = HEAD_TO_HEAD[i]
        if i % 2 == 0:
            body = (
                f"**{name}** ({base}, founded {founded}) concentrates on {focus}. It has raised EUR {raised} million, most recently "
                f"a {rnd}, and employs about {emp} people. {strength} On the other hand, {weakness[0].lower() + weakness[1:]}"
            )
        else:
            body = (
                f"**{name}**, founded in {base} in {founded}, sells {focus}; it employs some {emp} people and has raised EUR {raised} million "
                f"(latest: {rnd}). Its advantage: {strength[0].lower() + strength[1:]} Its weakness: {weakness[0].lower() + weakness[1:]}"
            )
        out.append(f"{body} In 2025 ClaimPilot met it in {met} tenders and won {won}.")
    return out


def en_risks(n):
    items = []
    for risk, like, impact, desc, mit in pools_en.RISKS[:n]:
        items.append(f"- **{risk}** (likelihood {like}, impact {impact}). {desc} Mitigation: {mit[0].lower() + mit[1:]}")
    return ["The register below lists the risks we consider material, as agreed with management.", "\n".join(items)]


def en_quarters():
    arr = interpolate([(22.0, 0.9), (23.0, 3.1), (24.0, 9.8), (25.0, 21.7), (25.75, 31.5)], quarter_times())
    cust = interpolate([(22.0, 9), (23.0, 21), (24.0, 38), (25.0, 52), (25.75, 63)], quarter_times())
    lines = []
    for (y, q), a, c, ev in zip(QUARTERS, arr, cust, pools_en.QUARTER_EVENTS):
        lines.append(f"- **Q{q} {y}:** ARR about EUR {a:.1f} million, {round(c)} customers. {ev}")
    return ["Quarter by quarter, the record since 2023 looks like this (ARR between year-ends is our interpolation):", "\n".join(lines)]


# ---------------------------------------------------------------- Chinese


def zh_regions(n):
    out = []
    for i, (name, prem, motor, cust, year, note) in enumerate(pools_zh.REGIONS[:n]):
        motor_prem = prem * motor / 100
        handling = prem * 0.10
        if cust == 0:
            lead = f"**{name}。**2025年当地财产险保费约{prem}亿元，车险占{motor}%。智理赔计划于{year}年进入。"
        elif i % 3 == 0:
            lead = f"**{name}。**2025年{name}财产险保费约{prem}亿元，其中车险占{motor}%。智理赔{year}年进入，目前有{cust}家客户。"
        elif i % 3 == 1:
            lead = f"**{name}。**智理赔自{year}年进入{name}以来，已签下{cust}家客户。当地财产险保费规模约{prem}亿元，车险占比{motor}%。"
        else:
            lead = f"**{name}。**{name}财产险市场2025年保费约{prem}亿元，车险比重为{motor}%，智理赔在这里的客户有{cust}家，最早一家签于{year}年。"
        sizing = [
            f"按一成的费用率推算，当地每年的理赔处理支出约{handling:.0f}亿元，其中车险约{motor_prem * 0.10:.0f}亿元。",
            f"由此估算，这里的保险公司一年花在处理赔案上的钱约为{handling:.0f}亿元（车险部分约{motor_prem * 0.10:.0f}亿元）。",
            f"照此口径，{name}的理赔处理费用一年大约{handling:.0f}亿元，车险贡献了其中的{motor_prem * 0.10:.0f}亿元左右。",
            f"对应的可服务支出约{handling:.0f}亿元，车险约占{motor_prem * 0.10:.0f}亿元。",
        ][i % 4]
        out.append(f"{lead}{sizing}{note}")
    return out


def zh_customers(n):
    out = []
    for i, c in enumerate(pools_zh.CUSTOMERS[:n]):
        name, place, line, live, claims, before, after, stp, value, note = c
        cut = round(100 * (before - after) / before)
        minutes = 12 + (i * 7) % 19  # handler minutes saved per claim, per the customer's own survey
        hours = claims * minutes / 60
        fte = hours / 1900
        saving = fte * 16  # 16万元 per handler-year, fully loaded
        if stp >= 10:
            stp_s = [f"快赔通道处理的案件占比达到{stp}%", f"{stp}%的案件已无需理赔员经手", f"直接走快赔的比例升至{stp}%"][i % 3]
        else:
            stp_s = [f"能直接走快赔通道的案件只有{stp}%", f"自动处理的比例仅为{stp}%"][i % 2]
        if i % 2 == 0:
            body = (
                f"**{name}**（{place}，{line}，{live}上线）。该公司这条业务线每年约有{claims}件案件。"
                f"上线后平均结案时间从{before:g}天缩短到{after:g}天，降幅{cut}%，{stp_s}。年合同额约{value}万元。"
            )
        else:
            body = (
                f"**{name}**是{place}的一家{line}公司，{live}上线智理赔。在每年约{claims}件的案件上，"
                f"平均结案时间由{before:g}天降至{after:g}天，缩短了{cut}%；{stp_s}。合同金额约为每年{value}万元。"
            )
        econ = [
            f"客户自己的调研显示，每件案件平均为理赔员省下约{minutes}分钟，一年合计约{hours / 10000:.1f}万工时，"
            f"折合{fte:.0f}名理赔员，节约人力成本约{saving:.0f}万元，是合同金额的{saving / value:.1f}倍。",
            f"若按每件省下{minutes}分钟计，全年省出的{hours / 10000:.1f}万工时大约等于{fte:.0f}个全职岗位，"
            f"约{saving:.0f}万元，合同费用的{saving / value:.1f}倍。",
            f"客户测算的人均节省时间为每件{minutes}分钟；放大到全年，是{fte:.0f}名理赔员的工作量、约{saving:.0f}万元的成本，"
            f"投入产出比约为{saving / value:.1f}比1。",
            f"单件节省{minutes}分钟看起来不多，乘以案件量就是{hours / 10000:.1f}万工时，按人力成本折算约{saving:.0f}万元。",
        ][i % 4]
        out.append(f"{body}{econ}{note}")
    return out


def zh_competitors(n):
    out = []
    for i, c in enumerate(pools_zh.COMPETITORS[:n]):
        name, founded, base, focus, raised, rnd, emp, strength, weakness = c
        met, won = HEAD_TO_HEAD[i]
        if i % 2 == 0:
            body = (
                f"**{name}**（{base}，{founded}年成立）主攻{focus}，累计融资约{raised}亿元，最近一轮为{rnd}，员工约{emp}人。"
                f"优势在于：{strength}短板是：{weakness}"
            )
        else:
            body = (
                f"**{name}**{founded}年在{base}成立，员工约{emp}人，专注{focus}，迄今融资约{raised}亿元，最近一轮是{rnd}。"
                f"它的长处是{strength}不足之处在于{weakness}"
            )
        tail = [
            f"2025年，智理赔在{met}次招标中与其正面相遇，赢下{won}次。",
            f"去年两家在招标中交手{met}次，智理赔胜出{won}次。",
            f"2025年的正面交锋记录是{met}战{won}胜（以智理赔计）。",
        ][i % 3]
        out.append(f"{body}{tail}")
    return out


def zh_risks(n):
    items = []
    for risk, like, impact, desc, mit in pools_zh.RISKS[:n]:
        items.append(f"- **{risk}**（可能性{like}，影响{impact}）：{desc}应对措施：{mit}")
    return ["下表之外，我们与管理层逐条讨论后，认为以下风险值得单独列出：", "\n".join(items)]


def zh_quarters():
    arr = interpolate([(22.0, 0.18), (23.0, 0.57), (24.0, 1.36), (25.0, 2.61), (25.75, 3.85)], quarter_times())
    cust = interpolate([(22.0, 11), (23.0, 22), (24.0, 31), (25.0, 40), (25.75, 47)], quarter_times())
    lines = []
    for (y, q), a, c, ev in zip(QUARTERS, arr, cust, pools_zh.QUARTER_EVENTS):
        lines.append(f"- **{y}年第{'一二三四'[q - 1]}季度：**ARR约{a:.2f}亿元，客户{round(c)}家。{ev}")
    return ["2023年以来的季度变化如下（年末之间的ARR为我们按增速插值估算）：", "\n".join(lines)]


def zh_lines(n):
    out = []
    for i, (line, prem, cases, avg, pen, share, note) in enumerate(pools_zh.LINES[:n]):
        paid = cases * avg / 1e4  # 万件 x 元 = 万元; / 1e4 -> 亿元
        if i % 2 == 0:
            lead = (
                f"**{line}。**2025年保费约{prem}亿元，全年案件约{cases}万件，件均赔款约{avg}元，合计赔款约{paid:.0f}亿元。"
                f"我们估计AI理赔工具在这一险种的渗透率约为{pen}%，它占智理赔ARR的{share}%。"
            )
        else:
            lead = (
                f"**{line}。**全年约{cases}万件案件、件均{avg}元，对应保费规模约{prem}亿元。"
                f"这一险种的AI工具渗透率我们估计在{pen}%左右，贡献了智理赔{share}%的ARR。"
            )
        out.append(f"{lead}{note}")
    return out


def zh_months(n):
    rows = []
    for month, cases, acc, stp, up in pools_zh.MONTHS[:n]:
        rows.append(f"- **{month}：**处理案件{cases / 10:.1f}万件，字段准确率{acc}%，快赔占比{stp}%，服务可用率{up}%。")
    return ["以下为公司提供的月度运营数据（处理案件数含所有客户、所有模块，同一案件只计一次）：", "\n".join(rows)]


def zh_churned(n):
    items = [f"- **{kind}（{place}，{span}）：**{why}" for kind, place, span, why in pools_zh.CHURNED[:n]]
    return ["\n".join(items)]


GEN = {
    "en": {
        "regions": (en_regions, len(pools_en.REGIONS), 4),
        "customers": (en_customers, len(pools_en.CUSTOMERS), 4),
        "competitors": (en_competitors, len(pools_en.COMPETITORS), 4),
        "risks": (en_risks, len(pools_en.RISKS), 5),
        "quarters": (lambda n: en_quarters(), 1, 1),
    },
    "zh": {
        "regions": (zh_regions, len(pools_zh.REGIONS), 5),
        "customers": (zh_customers, len(pools_zh.CUSTOMERS), 5),
        "competitors": (zh_competitors, len(pools_zh.COMPETITORS), 5),
        "risks": (zh_risks, len(pools_zh.RISKS), 6),
        "quarters": (lambda n: zh_quarters(), 1, 1),
        "lines": (zh_lines, len(pools_zh.LINES), len(pools_zh.LINES)),
        "months": (zh_months, len(pools_zh.MONTHS), len(pools_zh.MONTHS)),
        "churned": (zh_churned, len(pools_zh.CHURNED), len(pools_zh.CHURNED)),
    },
}


def render(lang, counts):
    src = open(os.path.join(HERE, "src", f"{lang}.md"), encoding="utf-8").read()
    for name, (fn, _, _) in GEN[lang].items():
        marker = f"<!-- gen:{name} -->"
        if marker in src:
            src = src.replace(marker, "\n\n".join(fn(counts[name])))
    planted = PLANTED_PARAGRAPH[lang].format(fact=PLANTED[lang]["fact"])
    src = src.replace("<!-- planted -->", planted)
    return src.rstrip("\n") + "\n"


def build(lang):
    """Adds generated entries round-robin until the document reaches its target length."""
    target = TARGETS[lang]
    gens = GEN[lang]
    counts = {k: min(lo, total) for k, (_, total, lo) in gens.items()}
    text = render(lang, counts)
    while len(text) < target - TOLERANCE // 2:
        grown = False
        for k, (_, total, _) in gens.items():
            if counts[k] < total and len(text) < target - TOLERANCE // 2:
                counts[k] += 1
                text = render(lang, counts)
                grown = True
        if not grown:
            break
    return text, counts


def paragraphs(text):
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def repeated_share(text, lang):
    """Share of the text (words for English, non-space characters for Chinese) inside an n-gram that
    occurs more than once: a measure of template repetition that exact-paragraph counts miss."""
    toks = text.split() if lang == "en" else [c for c in text if not c.isspace()]
    n = 8 if lang == "en" else 12
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    seen = {}
    for g in grams:
        seen[g] = seen.get(g, 0) + 1
    covered = [False] * len(toks)
    for i, g in enumerate(grams):
        if seen[g] > 1:
            covered[i : i + n] = [True] * n
    return sum(covered) / len(toks), n


def check_text(name, text):
    assert "\r" not in text, f"{name}: CR found"
    for i, ch in enumerate(text):
        if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise AssertionError(f"{name}: control or unassigned character U+{ord(ch):04X} at {i}")
    text.encode("utf-8")  # raises on lone surrogates


def check_planted(name, text, keyword, tail_share):
    n = text.count(keyword)
    assert n == 1, f"{name}: keyword {keyword!r} occurs {n} times, want 1"
    pos = text.index(keyword)
    assert pos >= len(text) * (1 - tail_share), f"{name}: keyword at {pos} of {len(text)}, not in the last {tail_share:.0%}"
    return pos


def check_fixture(path, keyword):
    text = open(path, encoding="utf-8", newline="").read()
    check_text(path, text)
    assert text.count(keyword) == 1, f"{path}: keyword {keyword!r} must occur once"
    assert keyword in paragraphs(text)[-1], f"{path}: keyword {keyword!r} must be in the last paragraph"
    return len(text)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out")
    os.makedirs(out_dir, exist_ok=True)
    report = {}
    for lang in ("zh", "en"):
        text, counts = build(lang)
        name = f"{lang}.md"
        check_text(name, text)
        assert abs(len(text) - TARGETS[lang]) <= TOLERANCE, f"{name}: {len(text)} characters, want {TARGETS[lang]} +/- {TOLERANCE}"
        pos = check_planted(name, text, PLANTED[lang]["keyword"], 0.05)
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        paras = paragraphs(text)
        report[lang] = {
            "file": name,
            "chars": len(text),
            "keyword": PLANTED[lang]["keyword"],
            "fact": PLANTED[lang]["fact"],
            "keyword_offset": pos,
            "keyword_position_share": round(pos / len(text), 4),
        }
        share, n = repeated_share(text, lang)
        report[lang]["repeated_ngram_share"] = round(share, 3)
        print(
            f"{name}: {len(text)} chars, {len(paras)} paragraphs/blocks ({len(set(paras))} distinct), "
            f"{share:.1%} of it inside a repeated {n}-gram, "
            f"generated entries {counts}, planted {PLANTED[lang]['keyword']!r} at {pos / len(text):.1%}"
        )
    with open(os.path.join(HERE, "planted.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)
        f.write("\n")
    fixtures = os.path.join(ROOT, "tests", "fixtures", "longdoc")
    for name, lang in (("small-en.md", "en"), ("small-zh.md", "zh")):
        path = os.path.join(fixtures, name)
        if os.path.exists(path):
            print(f"{os.path.relpath(path, ROOT)}: {check_fixture(path, PLANTED[lang]['keyword'])} chars, planted keyword in the last paragraph")
    print(f"wrote {out_dir}/zh.md, {out_dir}/en.md and {os.path.relpath(os.path.join(HERE, 'planted.json'), ROOT)}")


if __name__ == "__main__":
    main()
