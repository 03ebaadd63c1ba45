#!/usr/bin/env python3
"""Rewrite README.md's faithfulness status line and table from a --golden run.

  tools/kvmdiff/faith_table.py BUILD/tools/kvmdiff/smmu-kvmdiff

Runs `smmu-kvmdiff --golden` over the corpus, reads each scenario's first comment paragraph and
golden/known-divergences, and replaces what lies between README's "**Status**" line and the
next "## " heading. A maintainer's tool: run it after a change moves the tally.
"""
import glob, os, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
kd = os.path.join(root, 'tools', 'kvmdiff')
scns = sorted(glob.glob(os.path.join(kd, 'corpus', '*.scn')))
run = subprocess.run([sys.argv[1], '--golden', os.path.join(kd, 'golden')] + scns,
                     capture_output=True, text=True)
m = re.search(r'(\d+) scenario\(s\): (\d+) compared, (\d+) matched, (\d+) known', run.stdout)
if not m or run.returncode:
    sys.exit('smmu-kvmdiff --golden failed:\n' + run.stdout[-2000:] + run.stderr[-2000:])
total, compared, matched, known = m.groups()

divergences = {}
for line in open(os.path.join(kd, 'golden', 'known-divergences')):
    if line.startswith('#') or not line.strip():
        continue
    body, _, why = line.partition('#')
    name, sig = body.strip().split(' ', 1)
    divergences[name] = (sig.strip(), why.strip())

rows = []
for f in scns:
    name = os.path.basename(f)[:-4]
    words = []
    for l in open(f):
        if not l.startswith('#'):
            break
        words.append(l[1:].strip())
    desc = re.split(r'(?<=[a-z0-9)])\. ', ' '.join(words))[0].rstrip('.')
    if len(desc) > 150:
        desc = desc[:147].rsplit(' ', 1)[0] + ' ...'
    if name in divergences:
        sig, why = divergences[name]
        rows.append(f'| `{name}` | {desc} | differs at {sig.replace(":", "")} | {why} |')
    else:
        rows.append(f'| `{name}` | {desc} | **matches** every step | |')

status = (f'**Status** (`smmu-kvmdiff --golden`, the library\'s today profile against Linux 6.1): '
          f'**{matched} of {total} scenarios match at every step**')
status += '; the first divergence of each other one, and its reading:\n\n' if int(known) else '.\n\n'
table = '| scenario | what it does | against Linux 6.1 | reading |\n|---|---|---|---|\n' + '\n'.join(rows)

path = os.path.join(root, 'README.md')
s = open(path).read()
i = s.index('**Status** (`smmu-kvmdiff --golden`')
j = s.index('\n## ', i)
s = s[:i] + status + table + '\n' + s[j:]
open(path, 'w').write(s)
print(f'{matched} of {total} match, {known} known divergences')
