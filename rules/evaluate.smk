# Step 7: pass@k of every student, before and after fine-tuning, on the 228 held-out test puzzles.


rule test_puzzles:
    input:
        unpack(p3_files),
    output:
        "resources/p3/test_puzzles.jsonl",
    log:
        "logs/test_puzzles.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/test_puzzles.py"


rule sample_tests:
    input:
        puzzles="resources/p3/test_puzzles.jsonl",
        prefix=p3(P3_PREFIX),
        model=evaluated_folder,
    output:
        "results/eval/{student}/{tag}/shards/solutions.s{shard}.jsonl",
    log:
        "logs/sample_tests/{student}/{tag}/s{shard}.log",
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["sampling"]["gpus"],
    params:
        model=evaluated_folder,
        sampling=config["sampling"],
        settings=config["evaluate"],
        shards=config["evaluate"]["shards"],
        seed=config["seed"],
    script:
        "../scripts/solve.py"


rule evaluate:
    input:
        puzzles="resources/p3/test_puzzles.jsonl",
        solutions=lambda wildcards: expand(
            "results/eval/{{student}}/{{tag}}/shards/solutions.s{shard}.jsonl",
            shard=shards("evaluate"),
        ),
        verdicts=lambda wildcards: expand(
            "results/eval/{{student}}/{{tag}}/shards/verdicts.s{shard}.jsonl",
            shard=shards("evaluate"),
        ),
    output:
        per_puzzle=f"results/eval/{{student}}/{{tag}}/{PER_PUZZLE_CSV}",
        passk=f"results/eval/{{student}}/{{tag}}/{PASSK_CSV}",
    log:
        "logs/evaluate/{student}/{tag}.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        bootstrap=config["evaluate"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"
