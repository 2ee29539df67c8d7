# Step 6: fine-tune each student on a generator's data; every epoch's model is its own output, so
# the evaluation after epoch e is a job of its own. Checkpoints live under checkpoints/, outside the
# declared outputs, so a killed or pre-empted job resumes where it stopped.


rule finetune:
    input:
        texts=training_texts,
        model=training_init,
    output:
        models=[
            directory(
                f"results/models/{{student}}/{{gen}}-{{variant}}-r{{round}}/epoch{e}"
            )
            for e in range(1, LAST_EPOCH + 1)
        ],
        log_csv="results/models/{student}/{gen}-{variant}-r{round}/train_log.csv",
    log:
        "logs/finetune/{student}/{gen}-{variant}-r{round}.log",
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["finetune"]["gpus"],
    params:
        settings=finetune_settings(),
        accelerate=accelerate_config,
        checkpoints="checkpoints/{student}/{gen}-{variant}-r{round}",
    script:
        "../scripts/finetune.py"
