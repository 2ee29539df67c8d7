# Step 5: the fine-tuning sets (verified, and the unverified ablation) with a data card each, also as
# Hugging Face dataset folders.


rule build_dataset:
    input:
        puzzles="results/data/{gen}/r{round}/puzzles.filtered.jsonl",
        stats="results/data/{gen}/r{round}/puzzles.stats.json",
        solutions="results/data/{gen}/r{round}/solutions.jsonl",
        verdicts="results/data/{gen}/r{round}/solutions.verdicts.jsonl",
        solutions_hf="results/data/{gen}/r{round}/hf/solutions",  # built with every set it was made from
    output:
        text="results/data/{gen}/r{round}/{variant}/train.txt",
        examples="results/data/{gen}/r{round}/{variant}/examples.jsonl",
        card="results/data/{gen}/r{round}/{variant}/card.json",
        card_md="results/data/{gen}/r{round}/{variant}/card.md",
        hf=directory("results/data/{gen}/r{round}/{variant}/hf"),
    log:
        "logs/build_dataset/{gen}/r{round}/{variant}.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        model=generator_model,
        settings=config["dataset"],
        config=data_config(),
        seed=config["seed"],
    script:
        "../scripts/build_dataset.py"
