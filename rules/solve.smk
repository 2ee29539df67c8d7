# Step 3: sample solutions for the kept puzzles; the evaluation samples the test puzzles the same way.


rule solve_puzzles:
    input:
        puzzles="results/data/{gen}/r{round}/puzzles.filtered.jsonl",
        prefix=p3(P3_PREFIX),
        model=generator_input,
    output:
        "results/data/{gen}/r{round}/shards/solutions.s{shard}.jsonl",
    log:
        "logs/solve_puzzles/{gen}/r{round}/s{shard}.log",
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["sampling"]["gpus"],
    params:
        model=generator_model,
        sampling=config["sampling"],
        settings=config["solve"],
        shards=config["solve"]["shards"],
        seed=config["seed"],
    script:
        "../scripts/solve.py"


rule gather_solutions:
    input:
        solutions=lambda wildcards: expand(
            "results/data/{{gen}}/r{{round}}/shards/solutions.s{shard}.jsonl",
            shard=shards("solve"),
        ),
        verdicts=lambda wildcards: expand(
            "results/data/{{gen}}/r{{round}}/shards/verdicts.s{shard}.jsonl",
            shard=shards("solve"),
        ),
    output:
        solutions="results/data/{gen}/r{round}/solutions.jsonl",
        verdicts="results/data/{gen}/r{round}/solutions.verdicts.jsonl",
    log:
        "logs/gather_solutions/{gen}/r{round}.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "(cat {input.solutions} > {output.solutions}.tmp && mv {output.solutions}.tmp {output.solutions}"
        " && cat {input.verdicts} > {output.verdicts}.tmp && mv {output.verdicts}.tmp {output.verdicts})"
        " > {log} 2>&1"
