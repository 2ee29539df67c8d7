# The human-data control (generate.generators: [..., p3-train]): P3's train problems and their
# reference solutions stand in for steps 1-3; the solutions are verified and built into fine-tuning
# sets by the same rules as a model's samples.


ruleorder: human_data > gather_puzzles
ruleorder: human_data > solve_puzzles


rule human_data:
    input:
        puzzles=p3(P3_PUZZLES),
        split=p3(P3_SPLIT),
        held_out=[eval_puzzles(split) for split in EVAL_SPLITS],  # none may be kept
    output:
        puzzles=f"results/data/{HUMAN_DATA}/r0/puzzles.filtered.jsonl",
        stats=f"results/data/{HUMAN_DATA}/r0/puzzles.stats.json",
        solutions=expand(
            f"results/data/{HUMAN_DATA}/r0/shards/solutions.s{{shard}}.jsonl",
            shard=shards("solve"),
        ),
    log:
        f"logs/human_data/{HUMAN_DATA}.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/human_data.py"
