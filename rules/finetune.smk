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
    threads: workflow.cores
    resources:
        mem_mb=16000,
        runtime=720,
        gpu=config["finetune"]["gpus"],
    params:
        launcher=finetune_launcher(),
        settings=json.dumps(finetune_settings()),
        out_root="results/models/{student}/{gen}-{variant}-r{round}",
        checkpoints="checkpoints/{student}/{gen}-{variant}-r{round}",
    shell:
        "{params.launcher} -m selfteach finetune --model {input.model} --train {input.texts}"
        " --out-root {params.out_root} --epochs {LAST_EPOCH} --checkpoint-dir {params.checkpoints}"
        " --log {output.log_csv} --config-json '{params.settings}' > {log} 2>&1"
