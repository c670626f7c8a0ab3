package local.registry;

import java.util.List;

import javax.enterprise.context.ApplicationScoped;
import javax.enterprise.inject.Produces;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;

/**
 * Stands in for Apicurio's config-index Quarkus extension, whose build-time half is not
 * published on Maven Central (see pom.xml). That half lists the properties an admin may
 * change at run time through the REST API; the local registry has none, so every property
 * keeps the value its configuration gives it.
 */
@ApplicationScoped
public class NoDynamicConfig {
    @Produces
    @ApplicationScoped
    DynamicConfigPropertyList dynamicConfigProperties() {
        return new DynamicConfigPropertyList(List.of());
    }
}
