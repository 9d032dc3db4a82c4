package dev.m2q.validate;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * validate judges what the quantizers wrote, so it must read releases only through core: neither its build nor
 * its sources may reach the gptq or autoround modules (a shared bug would otherwise cancel out).
 */
class ModuleBoundaryTest {
    @Test
    void validateDependsOnNeitherQuantizer() throws IOException {
        String pom = Files.readString(Path.of("pom.xml"));
        assertTrue(pom.contains("<artifactId>m2q-validate</artifactId>"), "run from the validate module");
        assertFalse(pom.contains("m2q-gptq"), "validate/pom.xml must not depend on m2q-gptq");
        assertFalse(pom.contains("m2q-autoround"), "validate/pom.xml must not depend on m2q-autoround");
        try (Stream<Path> files = Files.walk(Path.of("src"))) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java"))
                    .filter(p -> !p.endsWith("ModuleBoundaryTest.java"))
                    .toList()) {
                String src = Files.readString(f);
                assertFalse(src.contains("dev.m2q.gptq"), f + " refers to dev.m2q.gptq");
                assertFalse(src.contains("dev.m2q.autoround"), f + " refers to dev.m2q.autoround");
            }
        }
    }
}
