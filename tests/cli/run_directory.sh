#!/usr/bin/env bash
# Run directories and what a run starts from: `train --out` refuses a directory holding a run
# unless --resume or --overwrite (which removes only meshlm's files); --resume refuses other data
# and keeps the run's decay horizon (or reports an explicit new one); the model's vocabulary
# defaults to the data's and may not be smaller; the start-up header's notes and warnings and
# the end-of-run summary. Usage: run_directory.sh MESHLM_BINARY
set -u
meshlm=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"
lr_at() {  # lr_at RUN STEP: the learning rate metrics.jsonl logged for STEP (the last such line)
  grep "^{\"step\": $2, \"loss\"" "$1/metrics.jsonl" | tail -1 | sed 's/.*"lr": \([^,]*\),.*/\1/'
}

for i in $(seq 300); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > "$work/text.txt"
sed 's/fox/cat/' "$work/text.txt" > "$work/other.txt"
train=(--train.micro_batch 2 --train.threads 1 --train.eval_every 0 --train.lr 1e-3 --train.warmup_steps 0
       --train.min_lr_ratio 0.1)
small=(--model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16 "${train[@]}")
run="$work/run"

# 1. A fresh run; a second one into the same directory is refused and changes nothing there.
"$meshlm" train --data "$work/text.txt" "${small[@]}" --train.steps 4 --out "$run" > "$work/out" 2> "$work/err"
check "fresh run" $? "$(cat "$work/err")"
grep -q "^done: 4 steps (1-4) in .* 128 tokens .*; best val loss [0-9.]* at step 4; peak memory [0-9.]* MiB resident$" "$work/out"
check "end-of-run summary" $? "$(tail -1 "$work/out")"
grep -q "(1 layer, 2 heads, .*, 1 thread;" "$work/out"
check "header grammar (1 layer, 1 thread)" $? "$(head -1 "$work/out")"
lines_before=$(wc -l < "$run/metrics.jsonl")
"$meshlm" train --data "$work/text.txt" "${small[@]}" --train.steps 4 --out "$run" > /dev/null 2> "$work/err"; rc=$?
refused "occupied --out is refused" "already holds a run \(metrics.jsonl, checkpoints/ \(1 checkpoints\) and model.safetensors\).*--resume.*--overwrite"
check "refused run left the directory as it was" "$([ "$(wc -l < "$run/metrics.jsonl")" -eq "$lines_before" ]; echo $?)" \
  "metrics.jsonl has $(wc -l < "$run/metrics.jsonl") lines, was $lines_before"
"$meshlm" train --data "$work/text.txt" "${small[@]}" --out "$run" --overwrite --resume > /dev/null 2> "$work/err"; rc=$?
refused "--overwrite with --resume" "--overwrite and --resume"

# 2. --overwrite removes meshlm's files only, says so, and starts again at step 1.
echo "my notes" > "$run/notes.txt"
echo "mine too" > "$run/checkpoints/README"
"$meshlm" train --data "$work/text.txt" "${small[@]}" --train.steps 2 --out "$run" --overwrite > "$work/out" 2> "$work/err"
check "--overwrite run" $? "$(cat "$work/err")"
grep -q "^--overwrite: removed the earlier run's metrics.jsonl, checkpoints/ (1 checkpoints), model.safetensors, config.json and meshlm_tokenizer.json from " "$work/out"
check "--overwrite says what it removed" $? "$(head -1 "$work/out")"
check "--overwrite keeps unrelated files" "$([ -f "$run/notes.txt" ] && [ -f "$run/checkpoints/README" ]; echo $?)" "$(ls -R "$run")"
check "--overwrite removed the old checkpoint" "$([ ! -e "$run/checkpoints/step_000004" ] && [ -d "$run/checkpoints/step_000002" ]; echo $?)" \
  "$(ls "$run/checkpoints")"
check "--overwrite: metrics.jsonl is the new run's" "$(head -1 "$run/metrics.jsonl" | grep -q '"step": 1,' && ! grep -q '"step": 4,' "$run/metrics.jsonl"; echo $?)" \
  "$(head -3 "$run/metrics.jsonl")"

# 3. --resume refuses other data and another model shape.
"$meshlm" train --resume "$run" --data "$work/other.txt" --train.steps 3 > /dev/null 2> "$work/err"; rc=$?
refused "resume with other data" "other.txt is not the data the checkpoint was trained on .*text.txt.*fingerprint"
"$meshlm" train --resume "$run" --data "$work/text.txt" --model.n_embd 32 > /dev/null 2> "$work/err"; rc=$?
refused "resume with another model shape" "differs from the checkpoint's in model.n_embd"

# 4. The decay horizon: a resumed run keeps its own (steps past it train at the floor); an
#    explicit --train.decay_steps replaces it and the header says so.
hr="$work/horizon"
"$meshlm" train --data "$work/text.txt" "${small[@]}" --train.steps 4 --out "$hr" > /dev/null 2> "$work/err"
check "horizon: first run" $? "$(cat "$work/err")"
"$meshlm" train --resume "$hr" --data "$work/text.txt" --train.steps 6 > "$work/out" 2> "$work/err"
check "horizon: resume to step 6" $? "$(cat "$work/err")"
grep -q "^schedule: the decay ends at step 4 (the run's horizon); steps 5-6 train at the floor" "$work/out"
check "horizon: header says steps 5-6 train at the floor" $? "$(grep schedule "$work/out")"
check "horizon: steps 5 and 6 at the floor lr (1e-4)" "$([ "$(lr_at "$hr" 5)" = 0.0001 ] && [ "$(lr_at "$hr" 6)" = 0.0001 ]; echo $?)" \
  "lr $(lr_at "$hr" 5), $(lr_at "$hr" 6)"
"$meshlm" train --resume "$hr" --data "$work/text.txt" --train.steps 8 --train.decay_steps 10 > "$work/out" 2> "$work/err"
check "horizon: resume with --train.decay_steps 10" $? "$(cat "$work/err")"
grep -q "^schedule: decay horizon changed from step 4 to step 10 (train.decay_steps)" "$work/out"
check "horizon: header reports the change" $? "$(grep schedule "$work/out")"
check "horizon: step 7 above the floor again" "$(awk -v lr="$(lr_at "$hr" 7)" 'BEGIN { exit !(lr > 0.0001) }'; echo $?)" "lr $(lr_at "$hr" 7)"
grep -q '"train.decay_steps": 10' "$hr/checkpoints/$(cat "$hr/checkpoints/latest")/trainer_state.json"
check "horizon: the checkpoint keeps the new horizon" $? "$(grep decay_steps "$hr/checkpoints/"*/trainer_state.json)"

# 5. The vocabulary: the data's by default; smaller is refused; larger is reported.
for i in $(seq 300); do echo "verse $i: and the word was with the light, and the light shone in the darkness $((i * 7))."; done > "$work/verses.txt"
"$meshlm" prepare --input "$work/verses.txt" --out "$work/bpe" --tokenizer bpe --vocab-size 300 > /dev/null 2> "$work/err"
check "prepare a 300-token bpe" $? "$(cat "$work/err")"
"$meshlm" train --data "$work/bpe" "${small[@]}" --train.steps 1 --out "$work/vocab" > "$work/out" 2> "$work/err"
check "bpe data without model.vocab_size trains" $? "$(cat "$work/err")"
grep -q '"vocab_size": 300' "$work/vocab/config.json"
check "the model has the data's 300 rows" $? "$(cat "$work/vocab/config.json")"
"$meshlm" train --data "$work/bpe" "${small[@]}" --train.steps 1 --model.vocab_size 200 > /dev/null 2> "$work/err"; rc=$?
refused "smaller model vocabulary" "model.vocab_size \(200\) is smaller than the data's tokenizer vocabulary \(300\)"
"$meshlm" train --data "$work/bpe" "${small[@]}" --train.steps 1 --model.vocab_size 512 > "$work/out" 2> "$work/err"
check "larger model vocabulary trains" $? "$(cat "$work/err")"
grep -q "^model vocabulary 512 rows, data's tokenizer 300" "$work/out"
check "header says the vocabularies differ" $? "$(head -4 "$work/out")"

# 6. --init-from is named in the header; settings without effect are warned about.
"$meshlm" train --data "$work/bpe" "${train[@]}" --train.steps 1 --init-from "$work/vocab" --zero 1 --optim.momentum 0.9 \
  > "$work/out" 2> "$work/err"
check "--init-from run" $? "$(cat "$work/err")"
grep -q "; initialised from $work/vocab$" "$work/out"
check "header: initialised from" $? "$(head -1 "$work/out")"
grep -q "^warning: parallel.zero = 1 has no effect with one data-parallel rank (dp = 1)" "$work/out"
check "warning: ZeRO with dp = 1" $? "$(grep warning "$work/out")"
grep -q "^warning: optim.momentum/nesterov/dampening have no effect with optim.name = \"adamw\"" "$work/out"
check "warning: another optimizer's key" $? "$(grep warning "$work/out")"

# 7. On a terminal the status line shows "val –" before the first evaluation.
if command -v script > /dev/null; then
  script -qec "$meshlm train --data $work/text.txt ${small[*]} --train.steps 2" /dev/null > "$work/tty" 2>&1
  grep -q "val – " "$work/tty" && ! grep -q "val nan" "$work/tty"
  check "terminal: val – before the first evaluation" $? "$(tr '\r' '\n' < "$work/tty" | grep step | head -2)"
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
