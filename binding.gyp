{
  "targets": [
    {
      "target_name": "vz_bridge",
      "conditions": [
        ["OS!='mac'", { "type": "none" }],
        ["OS=='mac'", {
          "sources": ["native/vz-bridge/vz_bridge.mm"],
          "xcode_settings": {
            "CLANG_ENABLE_OBJC_ARC": "YES",
            "MACOSX_DEPLOYMENT_TARGET": "13.0",
            "OTHER_LDFLAGS": ["-framework Virtualization", "-framework Foundation"]
          }
        }]
      ]
    }
  ]
}
