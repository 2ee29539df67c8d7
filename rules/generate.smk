# Steps 1 and 2: the model writes puzzles; the filter keeps well-formed, non-trivial, distinct ones.


rule generate_puzzles:
    input:
        unpack(p3_files),
        model=generator_input,
    output:
        "results/data/{gen}/r{round}/shards/puzzles.s{shard}.jsonl",
    log:
        "logs/generate_puzzles/{gen}/r{round}/s{shard}.log",
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
        settings=config["generate"],
        seed=config["seed"],
    script:
        "../scripts/generate_puzzles.py"


rule filter_puzzles:
    input:
        puzzles="results/data/{gen}/r{round}/shards/puzzles.s{shard}.jsonl",
        held_out=[eval_puzzles(split) for split in EVAL_SPLITS],  # none may be kept
    output:
        "results/data/{gen}/r{round}/shards/puzzles.filter.s{shard}.jsonl",
    log:
        "logs/filter_puzzles/{gen}/r{round}/s{shard}.log",
    conda:
        "../envs/verify.yaml"
    threads: config["verify"]["workers"]
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        skip_trivial_rate=config["filter"]["skip_trivial_rate"],
        verify=config["verify"],
        seed=config["seed"],
    script:
        "../scripts/filter_puzzles.py"


rule gather_puzzles:
    input:
        lambda wildcards: expand(
            "results/data/{{gen}}/r{{round}}/shards/puzzles.filter.s{shard}.jsonl",
            shard=shards("generate"),
        ),
    output:
        puzzles="results/data/{gen}/r{round}/puzzles.filtered.jsonl",
        stats="results/data/{gen}/r{round}/puzzles.stats.json",
        hf=directory("results/data/{gen}/r{round}/hf/puzzles"),
    log:
        "logs/gather_puzzles/{gen}/r{round}.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        model=generator_model,
        verify=config["verify"],
    script:
        "../scripts/gather_puzzles.py"
