"""Deep research: search several angles in parallel, analyse each source, synthesise a report."""

workflow = {
    "name": "deep-research",
    "description": "Parallel source search, per-source analysis, and a synthesis report.",
    "args": {
        "question": {"type": "string", "description": "The research question."},
        "angles": {
            "type": "array",
            "description": "Angles to search from, one searcher each.",
            "default": ["background and definitions", "recent developments", "counter-evidence"],
        },
        "tools": {
            "type": "array",
            "description": "Tools the searchers may use (e.g. fetch_url, read_file, grep).",
            "default": ["list_files", "read_file", "grep"],
        },
    },
}

SEARCHER = (
    "You are a research searcher. Find sources that bear on the question from ONE angle only. "
    "Use your tools to look for material; do not invent sources. Reply with a numbered list of "
    "at most 5 sources, each as: title | where it is (path or URL) | one sentence on why it "
    "matters. If you find nothing relevant, say so plainly."
)

ANALYST = (
    "You are a careful analyst. You get a research question and the sources one searcher "
    "found. For each source: what it claims, how strong the evidence is (strong / moderate / "
    "weak), and what it leaves open. Flag contradictions between sources. Be concise and "
    "quote only what you were given."
)

SYNTHESISER = (
    "You write the final research report. You get the question and several analyses. Write: "
    "1) a direct answer in 2-3 sentences, 2) the key findings with the sources behind each, "
    "3) disagreements and open questions, 4) a confidence level with one sentence of why. "
    "Do not add facts that are not in the analyses."
)


def run(args):
    question = args["question"]
    angles = args["angles"]
    searchers = [
        agent("search-" + str(i + 1), prompt=SEARCHER, tools=args["tools"])
        for i in range(len(angles))
    ]
    log("searching " + str(len(angles)) + " angles")
    found = phase(
        "search",
        agents=[
            (searchers[i], "Question: " + question + "\nAngle: " + angles[i])
            for i in range(len(angles))
        ],
    )
    analyst = agent("analyst", prompt=ANALYST)
    analyses = []
    for i in range(len(angles)):
        sources = found["search-" + str(i + 1)]
        if sources is None:
            log("no sources from angle: " + angles[i])
            continue
        analyses.append((analyst, "Question: " + question + "\nAngle: " + angles[i]
                         + "\nSources:\n" + sources))
    if not analyses:
        return {"question": question, "report": None, "error": "every search failed"}
    analysed = parallel(analyses)
    usable = [a for a in analysed if a is not None]
    synthesiser = agent("synthesis", prompt=SYNTHESISER)
    report = synthesiser.run(
        "Question: " + question + "\n\n" + "\n\n---\n\n".join(usable)
    )
    return {"question": question, "angles": angles, "analyses": usable, "report": report}
