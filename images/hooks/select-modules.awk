# Resolve kernel modules and their dependencies from modules.dep, dependencies first.
# Input: modules.dep (file 1); variable `want` = space-separated module names (- or _ alike);
# variable `builtin` = path of modules.builtin (modules compiled in need no loading).
# Output: one relative module path per line, in load order. A wanted module that is neither
# in modules.dep nor built in is reported on stderr and makes the exit status 1.
function norm(s) { sub(/.*\//, "", s); sub(/\.ko(\.(xz|zst|gz))?$/, "", s); gsub(/-/, "_", s); return s }
function visit(p,   n, i, ds) {
  if (p in done) return
  done[p] = 1
  n = split(deps[p], ds, " ")
  for (i = n; i >= 1; i--) visit(ds[i])   # modules.dep lists the last-needed dependency first
  print p
}
BEGIN {
  while ((getline line < builtin) > 0) isbuiltin[norm(line)] = 1
}
{
  path = $1; sub(/:$/, "", path)
  d = $0; sub(/^[^:]*:[ ]*/, "", d)
  deps[path] = d
  byname[norm(path)] = path
}
END {
  status = 0
  n = split(want, ws, " ")
  for (i = 1; i <= n; i++) {
    w = ws[i]; gsub(/-/, "_", w)
    if (w in byname) visit(byname[w])
    else if (!(w in isbuiltin)) { print "select-modules: no module " ws[i] > "/dev/stderr"; status = 1 }
  }
  exit status
}
