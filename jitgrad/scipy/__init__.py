"""`jitgrad.scipy`: SciPy's functions, traced, in SciPy's module layout (`jitgrad.scipy.special`,
`jitgrad.scipy.stats.norm`, `jitgrad.scipy.linalg`, `jitgrad.scipy.signal`, ...), so that
`import autograd.scipy.X as Y` becomes `import jitgrad.scipy.X as Y`.  SciPy itself is needed
only by programs that import these modules; it is not a dependency of jitgrad."""
