package dev.m2q.cli;

import dev.m2q.core.pipeline.ProgressListener;
import dev.m2q.eagle.attach.DraftAttach;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code m2q eagle attach}: a checked draft head into {@code QDIR/draft/}. */
@Command(
        name = "attach",
        mixinStandardHelpOptions = true,
        description = "Check a draft head (every FORMATS §5 invariant, and against the release's config) and copy it"
                + " into QDIR/draft/ with a manifest; exit 2 with the reason when it does not fit.")
final class EagleAttachCommand implements Callable<Integer> {
    @Option(names = "--draft", required = true, paramLabel = "DIR", description = "The draft head (m2q eagle train).")
    Path draft;

    @Option(names = "--release", required = true, paramLabel = "QDIR", description = "The release to attach it to.")
    Path release;

    @Option(names = "--overwrite", description = "Replace an existing QDIR/draft/ (only once the new one is ready).")
    boolean overwrite;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        EagleCommand.dir(draft, "--draft");
        EagleCommand.dir(release, "--release");
        var files = DraftAttach.attach(draft, release, overwrite, Version.get());
        ReleaseProgress.forStage(() -> ProgressListener.NONE).units("attach", 1, 1, null);
        var o = spec.commandLine().getOut();
        o.println("attached " + draft + " as " + release.resolve(DraftAttach.DIR) + " (" + files.size() + " files)");
        o.flush();
        return Main.EXIT_OK;
    }
}
