# What the study fetches or converts once: the P3 data and the base models.


rule fetch_p3:
    output:
        "resources/p3/{file}",
    log:
        "logs/fetch_p3/{file}.log",
    wildcard_constraints:
        file="|".join(P3_FILES),
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        mirror=config["p3"]["mirror"],
    script:
        "../scripts/fetch_p3.py"


rule prepare_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    conda:
        "../envs/model.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        spec=lambda wildcards: MODELS[wildcards.model],
    script:
        "../scripts/prepare_model.py"
