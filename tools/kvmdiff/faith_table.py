#!/usr/bin/env python3
"""Rewrite README.md's faithfulness status line and table from --golden runs.

  tools/kvmdiff/faith_table.py BUILD/tools/kvmdiff/smmu-kvmdiff

Runs `smmu-kvmdiff --golden` over the corpus against every record directory (golden/ and each
golden/linux-*/; smmu-kvmdiff picks the library's profile from the records' kernel), reads each
scenario's first comment paragraph and each directory's known-divergences, and replaces what lies
from README's "**Status**" line to the end of the table under it. A maintainer's tool: run it after
a change moves a tally.
"""
import glob, os, re, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
kd = os.path.join(root, 'tools', 'kvmdiff')
scns = sorted(glob.glob(os.path.join(kd, 'corpus', '*.scn')))


def kernel_of(d):
    """The kernel release the records of directory @d were taken on, as they say."""
    for f in sorted(glob.glob(os.path.join(d, '*.rec'))):
        for line in open(f):
            if line.startswith('kernel '):
                return line.split()[1]
    return '?'


def version(release):
    m = re.match(r'(\d+)\.(\d+)(?:\.(\d+))?', release)
    return tuple(int(x or 0) for x in m.groups()) if m else (0, 0, 0)


# The 6.1 records first (golden/), then the others, oldest kernel first.
dirs = [os.path.join(kd, 'golden')]
dirs += sorted(glob.glob(os.path.join(kd, 'golden', 'linux-*')), key=lambda d: version(kernel_of(d)))
columns = []
for d in dirs:
    run = subprocess.run([sys.argv[1], '--golden', d] + scns, capture_output=True, text=True)
    m = re.search(r'(\d+) scenario\(s\): (\d+) compared, (\d+) matched, (\d+) known', run.stdout)
    if not m or run.returncode:
        sys.exit(f'smmu-kvmdiff --golden {d} failed:\n' + run.stdout[-2000:] + run.stderr[-2000:])
    total, _, matched, known = (int(x) for x in m.groups())
    rel = kernel_of(d)
    divergences = {}
    for line in open(os.path.join(d, 'known-divergences')):
        if line.startswith('#') or not line.strip():
            continue
        body = line.partition('#')[0]
        name, sig = body.strip().split(' ', 1)
        divergences[name] = sig.strip()
    short = re.sub(r'-amd64$', '', rel.split('+')[0])
    columns.append(dict(dir=os.path.relpath(d, kd), kernel=rel, short=short,
                        total=total, matched=matched, known=known, div=divergences,
                        profile='6.1' if version(rel) < (6, 4, 0) else 'today'))

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
    cells = []
    for c in columns:
        sig = c['div'].get(name)
        cells.append(f'differs at {sig.replace(":", "")}' if sig else '**matches**')
    rows.append(f'| `{name}` | {desc} | ' + ' | '.join(cells) + ' |')

first = columns[0]
status = ('**Status** (`smmu-kvmdiff --golden` over each record directory; the library runs with the '
          'profile of the kernel the records were taken on: the 6.1 profile before 6.4, today\'s after):\n\n')
status += '\n'.join(f'- Linux {c["short"]} (`tools/kvmdiff/{c["dir"]}`, {c["profile"]} profile): '
                     f'**{c["matched"]} of {c["total"]} scenarios match at every step**' for c in columns)
status += ('\n\nA scenario that differs does so exactly as its directory\'s `known-divergences` lists, '
           'with the reading there.\n\n')
head = '| scenario | what it does | ' + ' | '.join(f'Linux {c["short"]}' for c in columns) + ' |\n'
head += '|---|---|' + '---|' * len(columns) + '\n'
table = head + '\n'.join(rows)

path = os.path.join(root, 'README.md')
s = open(path).read()
i = s.index('**Status** (`smmu-kvmdiff --golden`')
j = s.index('\n|', i) + 1  # the table: the lines from there that start with '|'
while s.startswith('|', j):
    j = s.index('\n', j) + 1
s = s[:i] + status + table + '\n' + s[j:]  # what follows the table is kept
open(path, 'w').write(s)
print('; '.join(f'{c["short"]}: {c["matched"]} of {c["total"]} match, {c["known"]} known' for c in columns))
