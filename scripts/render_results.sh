#!/usr/bin/env bash
# Re-render every file under results/ that is derived from the committed run directories:
# the paper's tables and figures (`mefr reproduce all --no-train`), the audits and the
# ensembles. Nothing is trained. Run from the root of the clone, then `git status results/`
# shows any rendered file that no longer matches its runs:
#   bash scripts/render_results.sh
set -euo pipefail
mefr() { python3 -m mefr.cli "$@" > /dev/null; }
R=results/cde
E=results/ensembles

mefr reproduce all --no-train --no-progress
mefr audit $R/ststnet_curves --out results/audit --name audit_ststnet
mefr audit $R/fr-paper_adam $R/basic_inception-paper_adam --out results/audit --name audit_cde_paper_adam

for net in fr basic_inception fr_fc fr_concat off_apexnet ststnet; do
  mefr ensemble $R/$net --out $E/cde_$net.md
done
mefr ensemble $R/fr $R/basic_inception $R/fr_fc $R/fr_concat $R/off_apexnet $R/ststnet \
  --out $E/cde_all_six.md
mefr ensemble $R/fr $R/off_apexnet --out $E/cde_fr_off_apexnet.md
mefr ensemble $R/fr-paper_adam --subsets 5 --out $E/cde_paper_adam_fr.md
mefr ensemble $R/basic_inception-paper_adam --subsets 5 --out $E/cde_paper_adam_basic_inception.md
mefr ensemble $R/fr-paper_adam $R/basic_inception-paper_adam --subsets 5 \
  --out $E/cde_paper_adam_fr_basic_inception.md
mefr ensemble $R/fr-paper_adam --seeds 0-4 --out $E/cde_paper_adam_fr_seeds0-4.md
mefr ensemble $R/basic_inception-paper_adam --seeds 0-4 \
  --out $E/cde_paper_adam_basic_inception_seeds0-4.md
mefr ensemble $R/fr-paper_adam $R/basic_inception-paper_adam --seeds 0-4 \
  --out $E/cde_paper_adam_fr_basic_inception_seeds0-4.md
git status --short results/
