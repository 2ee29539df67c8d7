# Step 4: run f(g()) for every sampled solution inside the bubblewrap sandbox. One rule serves the
# generated data (results/data/...) and the evaluation (results/eval/...).


rule verify_solutions:
    input:
        "{folder}/shards/solutions.s{shard}.jsonl",
    output:
        "{folder}/shards/verdicts.s{shard}.jsonl",
    log:
        "logs/verify_solutions/{folder}/s{shard}.log",
    wildcard_constraints:
        folder=r"results/(data|eval)/.+",
    conda:
        "../envs/verify.yaml"
    threads: config["verify"]["workers"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        verify=config["verify"],
    script:
        "../scripts/verify.py"
