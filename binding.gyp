{
  "targets": [
    {
      "target_name": "vz_bridge",
      "conditions": [
        ["OS!='mac'", { "type": "none" }],
        ["OS=='mac'", {
          "sources": [
            "native/vz-bridge/vz_bridge.mm",
            "native/vz-bridge/vz_machine.mm",
            "native/vz-bridge/vm_config.mm",
            "native/vz-bridge/js_link.mm"
          ],
          "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
          "xcode_settings": {
            "CLANG_ENABLE_OBJC_ARC": "YES",
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_ENABLE_OBJC_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "13.0",
            "OTHER_CPLUSPLUSFLAGS": [
              "-Wundeclared-selector",
              "-Werror=unguarded-availability-new",
              "-Werror=incomplete-implementation"
            ],
            "OTHER_LDFLAGS": ["-framework Virtualization", "-framework Foundation"]
          }
        }]
      ]
    }
  ]
}
