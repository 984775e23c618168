#!/usr/bin/env bash
# Checkpoint integrity: a flipped byte, a truncated file and a missing file in the newest
# checkpoint are each reported by `meshlm verify` (exit 2, one line per checkpoint) and skipped
# by --resume, which continues from the previous checkpoint to the same weights as a clean
# resume; a checkpoint named explicitly that fails is exit 2; checkpoints without a manifest are
# resumed unverified. Then the states an interrupted re-save of a step can leave (the old copy
# renamed aside, the new one not yet renamed in, or the aside not yet deleted) and the temporary
# directories of killed saves: resume copes with each, and the next run cleans them up.
# Usage: checkpoint_integrity.sh MESHLM_BINARY
set -u
meshlm=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. "$(dirname "$0")/checks.sh"
cd "$work" || exit 1
for i in $(seq 300); do echo "line $i: the quick brown fox jumps over the lazy dog, again and again."; done > text.txt
small=(--model.n_layer 1 --model.n_embd 16 --model.n_head 2 --model.n_positions 16 --train.micro_batch 2
       --train.threads 1 --train.eval_every 0 --train.lr 1e-3 --train.warmup_steps 0)
ck=checkpoints

# A run with checkpoints at steps 2, 4 and 6, and the weights a clean resume from step 4 reaches at step 8.
"$meshlm" train --data text.txt "${small[@]}" --train.steps 6 --train.save_every 2 --out base > /dev/null 2> err
check "base run" $? "$(cat err)"
"$meshlm" verify base > out 2> err; rc=$?
check "verify of a sound run: exit 0, one ok line per checkpoint" \
  "$([ $rc -eq 0 ] && [ "$(grep -c '^ok          base/checkpoints/step_00000[246]: 5 files, [0-9]* bytes$' out)" -eq 3 ] && [ ! -s err ]; echo $?)" \
  "exit $rc: $(cat out err)"
check "verify's summary line" "$(tail -1 out | grep -qE '^3 of 3 checkpoints verified \([0-9.]+ MB hashed in [0-9.]+ s, [0-9.]+ GB/s\)$'; echo $?)" "$(tail -1 out)"
check "every file of a checkpoint is in its manifest" \
  "$(for f in base/$ck/step_000006/*; do n=$(basename "$f"); [ "$n" = manifest.json ] || grep -q "\"name\": \"$n\"" base/$ck/step_000006/manifest.json || exit 1; done; echo $?)" \
  "$(ls base/$ck/step_000006)"
cp -a base clean
rm -rf clean/$ck/step_000006; echo step_000004 > clean/$ck/latest
"$meshlm" train --data text.txt "${small[@]}" --train.steps 8 --resume clean > /dev/null 2> err
check "clean resume from step 4" $? "$(cat err)"

# corrupt KIND RUN: damages one file of RUN's newest checkpoint.
corrupt() {
  local d=$2/$ck/step_000006
  case $1 in
    flipped) local byte; byte=$(od -An -tu1 -j 5000 -N1 "$d/model.safetensors" | tr -d ' ')
             printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$d/model.safetensors" bs=1 seek=5000 conv=notrunc status=none ;;
    truncated) truncate -s -7 "$d/optimizer.safetensors" ;;
    missing) rm "$d/trainer_state.json" ;;
  esac
}
declare -A problem=([flipped]="model.safetensors fails its checksum \(xxh3-128 [0-9a-f]{32}, the manifest lists [0-9a-f]{32}\)"
                    [truncated]="optimizer.safetensors is truncated \([0-9]+ bytes of the [0-9]+ bytes the manifest lists\)"
                    [missing]="trainer_state.json is missing")
for kind in flipped truncated missing; do
  cp -a base "$kind"
  corrupt "$kind" "$kind"
  "$meshlm" verify "$kind" > out 2> err; rc=$?
  check "$kind: verify exits 2 naming the file" \
    "$([ $rc -eq 2 ] && grep -qE "^FAILED      $kind/$ck/step_000006: ${problem[$kind]}$" out && [ "$(grep -c '^ok ' out)" -eq 2 ]; echo $?)" \
    "exit $rc: $(cat out)"
  check "$kind: verify's error line" \
    "$([ "$(wc -l < err)" -eq 1 ] && grep -q "^error: verify: 1 of 3 checkpoints in $kind did not verify (1 failed, 0 without a manifest)$" err; echo $?)" "$(cat err)"
  "$meshlm" verify "$kind/$ck/step_000006" > out 2> err; rc=$?
  check "$kind: verify of the checkpoint alone exits 2" "$([ $rc -eq 2 ] && grep -qE "^FAILED .*${problem[$kind]}" out; echo $?)" "exit $rc: $(cat out err)"
  "$meshlm" verify "$kind/$ck/step_000004" > out 2> err
  check "$kind: verify of a sound checkpoint alone exits 0" $? "$(cat out err)"
  "$meshlm" train --data text.txt "${small[@]}" --train.steps 8 --resume "$kind" > out 2> err; rc=$?
  check "$kind: resume skips the newest checkpoint, saying which and why" \
    "$([ $rc -eq 0 ] && grep -qE "^resume: skipped checkpoint step_000006: ${problem[$kind]}$" out && grep -q "resuming from $kind/$ck/step_000004" out; echo $?)" \
    "exit $rc: $(cat out err)"
  cmp -s "$kind/model.safetensors" clean/model.safetensors
  check "$kind: the resumed run ends with a clean resume's weights" $? "weights differ"
  cp -a base "explicit_$kind"
  corrupt "$kind" "explicit_$kind"
  "$meshlm" eval --checkpoint "explicit_$kind/$ck/step_000006" --data text.txt > out 2> err; rc=$?
  check "$kind: a checkpoint named explicitly fails with exit 2" \
    "$([ $rc -eq 2 ] && [ "$(wc -l < err)" -eq 1 ] && grep -qE "^error: --checkpoint explicit_$kind/$ck/step_000006 fails verification: ${problem[$kind]}" err; echo $?)" \
    "exit $rc: $(cat err)"
done

# Two processes: rank 0 alone verifies and picks (one note, printed once); both ranks continue
# from its choice, to the weights of a two-process resume of the clean run.
if command -v mpirun > /dev/null; then
  cp -a base flipped2; corrupt flipped flipped2; cp -a base clean2
  rm -rf clean2/$ck/step_000006; echo step_000004 > clean2/$ck/latest
  "$meshlm" train --nproc 2 --data text.txt "${small[@]}" --train.steps 8 --resume clean2 > /dev/null 2> err
  check "two processes: clean resume" $? "$(cat err)"
  "$meshlm" train --nproc 2 --data text.txt "${small[@]}" --train.steps 8 --resume flipped2 > out 2> err; rc=$?
  check "two processes: resume skips the flipped checkpoint, saying so once" \
    "$([ $rc -eq 0 ] && [ "$(grep -c '^resume: skipped checkpoint step_000006: model.safetensors fails its checksum' out)" -eq 1 ] && grep -q "resuming from flipped2/$ck/step_000004" out; echo $?)" \
    "exit $rc: $(cat out err)"
  cmp -s flipped2/model.safetensors clean2/model.safetensors
  check "two processes: the same weights as a clean two-process resume" $? "weights differ"
fi

# Every checkpoint damaged: resume refuses, naming each.
cp -a base allbad
for s in 2 4 6; do truncate -s -1 allbad/$ck/step_00000$s/config.json; done
"$meshlm" train --data text.txt "${small[@]}" --train.steps 8 --resume allbad > out 2> err; rc=$?
check "no checkpoint verifies: exit 2 naming each" \
  "$([ $rc -eq 2 ] && [ "$(wc -l < err)" -eq 1 ] && grep -q "^error: --resume: no checkpoint in allbad/$ck verifies (step_000006: config.json is truncated .*; step_000004: .*; step_000002: .*)$" err; echo $?)" \
  "exit $rc: $(cat err)"

# Checkpoints of an older meshlm (no manifest): verify says so (exit 2); resume takes them with a note.
cp -a base old
rm old/$ck/step_*/manifest.json
"$meshlm" verify old > out 2> err; rc=$?
check "no manifest: verify says unverified, exit 2" \
  "$([ $rc -eq 2 ] && [ "$(grep -c '^unverified  old/checkpoints/step_00000[246]: no manifest.json' out)" -eq 3 ]; echo $?)" "exit $rc: $(cat out)"
"$meshlm" train --data text.txt "${small[@]}" --train.steps 8 --resume old > out 2> err; rc=$?
check "no manifest: resume goes on unverified, saying so" \
  "$([ $rc -eq 0 ] && grep -q "^resume: checkpoint step_000006 has no manifest.json .*: resuming from it unverified$" out; echo $?)" "exit $rc: $(cat out err)"

# Interrupted re-saves of step 6 (`latest` names step_000006 in each) and killed saves' leftovers.
resume_from_state() {  # resume_from_state NAME: resumes run NAME to step 8; checks the weights and that no temporary remains
  "$meshlm" train --data text.txt "${small[@]}" --train.steps 8 --resume "$1" > "$1.out" 2> err; rc=$?
  check "$1: resume succeeds" "$rc" "exit $rc: $(cat err)"
  check "$1: no temporary checkpoint directory remains" "$(ls -a "$1/$ck" > list && ! grep -q '^\.tmp' list; echo $?)" "$(ls -a "$1/$ck")"
  "$meshlm" verify "$1" > out 2> err
  check "$1: every checkpoint verifies afterwards" $? "$(cat out err)"
}
cp -a base from6
"$meshlm" train --data text.txt "${small[@]}" --train.steps 8 --resume from6 > /dev/null 2> err
check "clean resume from step 6" $? "$(cat err)"

# (a) killed after the old copy was renamed aside, before the new one was renamed in.
cp -a base aside_only
mv aside_only/$ck/step_000006 aside_only/$ck/.tmp.step_000006.aside
cp -a aside_only/$ck/.tmp.step_000006.aside aside_only/$ck/.tmp.step_000006.4242
"$meshlm" verify aside_only > out 2> err
check "aside only: verify checks the aside copy" \
  "$(grep -q '^ok          step_000006 (its aside copy .tmp.step_000006.aside): 5 files' out; echo $?)" "$(cat out err)"
resume_from_state aside_only
check "aside only: resumed from the aside copy, restored it and removed the new copy" \
  "$(grep -q '^resume: step_000006 was being re-saved when the run stopped: resuming from its previous copy .tmp.step_000006.aside$' aside_only.out &&
     grep -q '^checkpoints: restored step_000006 from .tmp.step_000006.aside (a re-save of it was interrupted)$' aside_only.out &&
     grep -q '^checkpoints: removed .tmp.step_000006.4242 (an unfinished checkpoint of a stopped run)$' aside_only.out &&
     grep -q "resuming from aside_only/$ck/step_000006" aside_only.out; echo $?)" "$(cat aside_only.out)"
cmp -s aside_only/model.safetensors from6/model.safetensors
check "aside only: the weights of a clean resume from step 6" $? "weights differ"

# (b) killed after the new copy was renamed in, before the aside copy was deleted; and (c) a save
# killed while writing (before any rename): a partial temporary directory.
cp -a base both
cp -a both/$ck/step_000006 both/$ck/.tmp.step_000006.aside
mkdir both/$ck/.tmp.step_000008.5151
head -c 1000 base/$ck/step_000006/model.safetensors > both/$ck/.tmp.step_000008.5151/model.safetensors
resume_from_state both
check "both: resumed from step_000006 and removed the aside copy and the partial save" \
  "$(grep -q "resuming from both/$ck/step_000006" both.out &&
     grep -q '^checkpoints: removed .tmp.step_000006.aside (the previous copy of a re-saved checkpoint)$' both.out &&
     grep -q '^checkpoints: removed .tmp.step_000008.5151 (an unfinished checkpoint of a stopped run)$' both.out; echo $?)" "$(cat both.out)"
cmp -s both/model.safetensors from6/model.safetensors
check "both: the weights of a clean resume from step 6" $? "weights differ"

# (d) `latest` names a step that is gone (no aside copy either): resume takes the newest that verifies.
cp -a base dangling
rm -rf dangling/$ck/step_000006
resume_from_state dangling
check "dangling latest: resumed from step 4" "$(grep -q "resuming from dangling/$ck/step_000004" dangling.out; echo $?)" "$(cat dangling.out)"
cmp -s dangling/model.safetensors clean/model.safetensors
check "dangling latest: the weights of a clean resume from step 4" $? "weights differ"

# A re-save of an existing step goes through the aside copy and leaves none: resume at step 6 with
# train.steps 6 saves step 6 again.
cp -a base resave
inode=$(stat -c %i resave/$ck/step_000006)
"$meshlm" train --data text.txt "${small[@]}" --train.steps 6 --resume resave > out 2> err
check "re-save of step 6" $? "$(cat out err)"
check "re-save: a new step 6 replaced the old, no temporary remains and step 6 verifies" \
  "$([ "$(stat -c %i resave/$ck/step_000006)" != "$inode" ] && ls -a resave/$ck > list && ! grep -q '^\.tmp' list && "$meshlm" verify resave/$ck/step_000006 > /dev/null; echo $?)" "$(ls -a resave/$ck)"

"$meshlm" verify nowhere > out 2> err; rc=$?
check "verify of a missing path: exit 2" "$([ $rc -eq 2 ] && grep -q '^error: verify: nowhere is not a directory$' err; echo $?)" "exit $rc: $(cat err)"
mkdir empty
"$meshlm" verify empty > out 2> err; rc=$?
check "verify of a directory without checkpoints: exit 2" \
  "$([ $rc -eq 2 ] && grep -q '^error: verify: empty is neither a checkpoint nor a run directory' err; echo $?)" "exit $rc: $(cat err)"

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
