/**
 * The run guardian: a tiny Perl process between the daemon and each runner child that makes
 * "every process a run started dies with the run" true, including processes that called
 * setsid() or double-forked out of the run's process group.
 *
 * Node cannot call prctl(2), Perl can (`syscall`, in perl-base, which every Debian/Ubuntu has).
 * The guardian makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so every orphan of the
 * run is re-parented to it instead of to init, and then:
 * - forwards SIGTERM/SIGINT to the run's process group (graceful stop);
 * - when the run's main process exits, SIGKILLs every remaining descendant (found through
 *   /proc), reaps them, and exits with the main process's status;
 * - when its control pipe (fd 3) reaches EOF, SIGKILLs every descendant at once and exits. The
 *   daemon holds the pipe's other end: closing it is how the daemon force-kills a run, and the
 *   kernel closes it when the daemon dies, even by SIGKILL. A parent-death signal (SIGHUP) and a
 *   changed parent pid are backups for the same.
 * The main process also gets PR_SET_PDEATHSIG SIGKILL, should the guardian itself be killed.
 *
 * Without Perl, or off Linux, runs fall back to `setpriv --pdeathsig SIGKILL` and a process
 * group (see spawn.ts): the direct child dies with the daemon, its group is signalled, but a
 * process that left the group can outlive the daemon.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/** prctl(2)'s syscall number per Node architecture (Linux). */
const PRCTL_NR: Partial<Record<NodeJS.Architecture, number>> = {
  x64: 157,
  arm64: 167,
  riscv64: 167,
  loong64: 167,
  arm: 172,
  ia32: 172,
  s390x: 172,
  ppc64: 171,
  ppc: 171,
  mips: 4192,
  mipsel: 4192,
};

/** The guardian's control pipe in the child's stdio array. */
export const GUARD_FD = 3;

// argv: <prctl nr> <cmd> [args...]. No modules beyond POSIX (in perl-base).
const SCRIPT = String.raw`
use strict; use POSIX ();
my ($nr, @cmd) = @ARGV;
syscall($nr, 36, 1, 0, 0, 0) == 0 or print STDERR "mesh-guardian: PR_SET_CHILD_SUBREAPER failed: $!\n";
syscall($nr, 1, 1, 0, 0, 0);
my $ppid = getppid();
open(my $ctl, '<&=', 3) or die "mesh-guardian: no control pipe on fd 3: $!\n";
my ($gone, $status) = (0, undef);
$SIG{CHLD} = sub {};
$SIG{HUP} = sub { $gone = 1 };
my $pid;
$SIG{TERM} = sub { kill 'TERM', -$pid if $pid };
$SIG{INT} = sub { kill 'INT', -$pid if $pid };
pipe(my $r, my $w) or die "mesh-guardian: pipe: $!\n";
$pid = fork();
defined $pid or die "mesh-guardian: fork: $!\n";
if ($pid == 0) {
  close $r; close $ctl; POSIX::close(3);
  POSIX::setpgid(0, 0);
  syscall($nr, 1, 9, 0, 0, 0);
  $SIG{$_} = 'DEFAULT' for qw(CHLD HUP TERM INT);
  exec { $cmd[0] } @cmd;
  print STDERR "mesh-guardian: cannot run $cmd[0]: $!\n";
  POSIX::_exit(127);
}
close $w; POSIX::setpgid($pid, $pid); sysread($r, my $x, 1); close $r;
sub reap { while ((my $k = waitpid(-1, 1)) > 0) { $status = $? if $k == $pid } }
sub descendants {
  my %kids;
  opendir(my $d, '/proc') or return ();
  for my $p (grep { /^\d+$/ } readdir $d) {
    open(my $f, '<', "/proc/$p/stat") or next;
    my $s = <$f>; close $f; defined $s or next;
    $s =~ /\)\s+(\S)\s+(\d+)/ or next;
    next if $1 eq 'Z' || $1 eq 'X';
    push @{$kids{$2}}, $p;
  }
  closedir $d;
  my @out; my @todo = ($$);
  while (@todo) { my $q = shift @todo; for my $c (@{$kids{$q} || []}) { push @out, $c; push @todo, $c } }
  return @out;
}
sub kill_all {
  for (1 .. 500) {
    my @d = descendants();
    last unless @d;
    kill 'KILL', @d;
    select(undef, undef, undef, 0.01);
    reap();
  }
  reap();
}
while (!$gone && !defined $status) {
  my $rin = ''; vec($rin, 3, 1) = 1;
  my $n = select(my $rout = $rin, undef, undef, 0.5);
  if ($n > 0) { my $got = sysread($ctl, my $buf, 64); $gone = 1 if !$got }
  reap();
  $gone = 1 if getppid() != $ppid;
}
kill_all();
# The main process may be between SIGKILL and reapable: wait (at most 2 s) for its status.
for (1 .. 200) { last if defined $status; select(undef, undef, undef, 0.01); reap(); }
exit 1 if !defined $status;
if (POSIX::WIFSIGNALED($status)) {
  my $sig = POSIX::WTERMSIG($status);
  $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
  kill $sig, $$;
  select(undef, undef, undef, 0.1);
  exit 128 + $sig;
}
exit POSIX::WEXITSTATUS($status);
`;

const PERL = ["/usr/bin/perl", "/bin/perl"].find((p) => existsSync(p));

let probed: boolean | undefined;

/**
 * Whether runs can be guarded here: Linux, Perl present, and prctl's subreaper call works
 * (checked once, ~5 ms).
 */
export function guardianAvailable(): boolean {
  if (probed !== undefined) return probed;
  const nr = PRCTL_NR[process.arch];
  probed = false;
  if (process.platform !== "linux" || !PERL || nr === undefined) return probed;
  try {
    execFileSync(PERL, ["-e", `syscall(${nr}, 36, 1, 0, 0, 0) == 0 or exit 3`], {
      stdio: "ignore",
      timeout: 5000,
    });
    probed = true;
  } catch {
    probed = false;
  }
  return probed;
}

/** argv that runs `argv` under a guardian; the child needs a pipe on fd GUARD_FD. */
export function guardedArgv(argv: [string, ...string[]]): [string, ...string[]] {
  const nr = PRCTL_NR[process.arch];
  if (!PERL || nr === undefined) throw new Error("guardian unavailable");
  return [PERL, "-e", SCRIPT, String(nr), ...argv];
}
