"""Multi-review: code-health, security and standards reviews in parallel, then merged."""

workflow = {
    "name": "multi-review",
    "description": "Code-health, security and standards reviews in parallel; findings merged "
    "and de-duplicated.",
    "args": {
        "path": {"type": "string", "description": "File or folder to review.", "default": "."},
        "context": {"type": "string", "description": "What the code is for.", "default": ""},
    },
}

FORMAT = (
    " Read the code with your tools before judging it. Report each finding on its own line as: "
    "SEVERITY | LOCATION | FINDING, where SEVERITY is high, medium or low and LOCATION is "
    "file:line. No other lines. If there is nothing to report, reply with exactly: none"
)

REVIEWERS = {
    "code-health": "You review code health: dead code, duplication, unclear names, functions "
    "doing too much, missing tests, error handling that hides failures." + FORMAT,
    "security": "You review security: injection, unsafe deserialisation, path traversal, "
    "secrets in code or logs, missing authentication or authorisation checks, weak crypto."
    + FORMAT,
    "standards": "You review against common standards for the language: style guide "
    "conformance, typing, documentation of public functions, consistent error types." + FORMAT,
}

RANK = {"high": 0, "medium": 1, "low": 2}


def parse(reviewer, text):
    findings = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3 or parts[0].lower() not in RANK:
            continue
        findings.append({"severity": parts[0].lower(), "location": parts[1],
                         "finding": parts[2], "reviewers": [reviewer]})
    return findings


def merge(all_findings):
    merged = {}
    for f in all_findings:
        key = f["location"].lower() + " " + " ".join(f["finding"].lower().split()[:6])
        if key in merged:
            kept = merged[key]
            kept["reviewers"] = sorted(set(kept["reviewers"] + f["reviewers"]))
            if RANK[f["severity"]] < RANK[kept["severity"]]:
                kept["severity"] = f["severity"]
        else:
            merged[key] = f
    return sorted(merged.values(), key=lambda f: (RANK[f["severity"]], f["location"]))


def run(args):
    names = list(REVIEWERS)
    reviewers = [agent(name, prompt=REVIEWERS[name], tools=["list_files", "read_file", "grep"])
                 for name in names]
    request = "Review " + args["path"] + "."
    if args["context"]:
        request = request + " Context: " + args["context"]
    results = parallel([(r, request) for r in reviewers])
    findings = []
    for i in range(len(names)):
        if results[i] is None:
            log(names[i] + " review failed; merging the others")
            continue
        findings.extend(parse(names[i], results[i]))
    merged = merge(findings)
    log(str(len(findings)) + " findings, " + str(len(merged)) + " after de-duplication")
    return {"path": args["path"], "findings": merged,
            "reviews_failed": [names[i] for i in range(len(names)) if results[i] is None]}
