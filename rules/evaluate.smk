# Step 7: pass@k of every student, before and after fine-tuning, on the 228 held-out test puzzles
# (or, while choosing settings, on the validation puzzles: evaluate.split). The rule `evaluate`
# tabulates every benchmark's verdicts (results/eval/ for P3, results/humaneval/ for HumanEval).


rule eval_puzzles:
    input:
        unpack(p3_files),
    output:
        eval_puzzles("{split}"),
    log:
        "logs/eval_puzzles/{split}.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/eval_puzzles.py"


rule sample_tests:
    input:
        puzzles=eval_puzzles(config["evaluate"]["split"]),
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
        settings=eval_settings(),
        shards=config["evaluate"]["shards"],
        seed=config["seed"],
    script:
        "../scripts/solve.py"


rule evaluate:
    input:
        puzzles=benchmark_problems,
        solutions=lambda wildcards: expand(
            "results/{{bench}}/{{student}}/{{tag}}/shards/solutions.s{shard}.jsonl",
            shard=shards("evaluate"),
        ),
        verdicts=lambda wildcards: expand(
            "results/{{bench}}/{{student}}/{{tag}}/shards/verdicts.s{shard}.jsonl",
            shard=shards("evaluate"),
        ),
    output:
        per_puzzle=f"results/{{bench}}/{{student}}/{{tag}}/{PER_PUZZLE_CSV}",
        passk=f"results/{{bench}}/{{student}}/{{tag}}/{PASSK_CSV}",
    log:
        "logs/evaluate/{bench}/{student}/{tag}.log",
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
